//! The launcher's start-up: check ports, fork the orphan sentinel, then agree with the other
//! hosts' launchers (first host: gather and judge; others: join) before the workers start.

use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::Context;

use super::control::{self, Hello, Msg};
use super::events::{Event, now_ms};
use super::flags::LaunchFlags;
use super::plan::{job_token, plan, worker_command};
use super::sentinel::Sentinel;
use super::spawn::run_workers;
use super::supervisor::{Peer, Role};
use super::{ports, procs, signals, wire};

/// Runs the launcher; returns its exit code.
pub fn launch(flags: LaunchFlags, raw_args: &[String]) -> anyhow::Result<i32> {
    let cmd = worker_command(&flags.command, raw_args)?;
    let plan = plan(&flags, &cmd)?;
    let topo = &plan.topo;
    let host = topo.host().to_string();
    let ports: Vec<u16> = (0..topo.local_world_size())
        .map(|i| topo.start_port + i as u16)
        .collect();
    let preflight: Vec<String> = ports::probe(topo.host(), ports)
        .iter()
        .map(ToString::to_string)
        .collect();
    // Fork the sentinel while this process still has one thread.
    let sentinel = Sentinel::start().context("cannot start the orphan sentinel")?;
    procs::become_subreaper();
    let (tx, rx) = mpsc::channel::<Event>();
    signals::forward_signals(tx.clone()).context("cannot install signal handlers")?;
    let deadline = Instant::now() + plan.start_timeout;
    let got_signal = std::cell::Cell::new(false);
    let interrupted = || {
        if matches!(rx.try_recv(), Ok(Event::Signal(_))) {
            got_signal.set(true);
        }
        got_signal.get()
    };

    let (role, token) = if topo.ips.len() == 1 {
        if !preflight.is_empty() {
            return Ok(refuse(
                &format!("the job cannot start:\n  {}", preflight.join("\n  ")),
                sentinel,
                1,
            ));
        }
        (Role::Solo, job_token(&plan)?)
    } else if topo.node_rank == 0 {
        let listener = match TcpListener::bind(plan.control) {
            Ok(listener) => listener,
            Err(err) => {
                let owner = ports::owner_of(plan.control.port())
                    .map(|o| format!(", held by {o}"))
                    .unwrap_or_default();
                let why = format!(
                    "cannot listen for the other launchers on control port {} ({err}{owner})",
                    plan.control
                );
                return Ok(refuse(&why, sentinel, 1));
            }
        };
        let members = match control::gather(
            &listener,
            &topo.ips,
            deadline,
            plan.start_timeout,
            &interrupted,
        ) {
            Ok(members) => members,
            Err((why, members)) => {
                for m in &members {
                    let _ = m.sender.send(&Msg::Reject {
                        message: why.clone(),
                    });
                }
                return Ok(refuse(&why, sentinel, exit_code(&got_signal)));
            }
        };
        if let Some(why) = control::verdict(&plan.fingerprint, &preflight, &host, &members) {
            for m in &members {
                let _ = m.sender.send(&Msg::Reject {
                    message: why.clone(),
                });
            }
            return Ok(refuse(&why, sentinel, 1));
        }
        let token = job_token(&plan)?;
        let mut peers = Vec::new();
        let mut senders = Vec::new();
        for m in members {
            if m.skew_ms.abs() > 1000 {
                eprintln!(
                    "ringdet launch: warning: the clock of {} is {} ms off this host's",
                    m.hello.host, m.skew_ms
                );
            }
            m.sender
                .send(&Msg::Go {
                    token: token.clone(),
                })
                .with_context(|| format!("lost {} at start", m.hello.host))?;
            let (node, events) = (m.hello.node_rank, tx.clone());
            std::thread::Builder::new()
                .name(format!("node {node}"))
                .spawn(move || {
                    let why = m
                        .receiver
                        .pump(&|msg| events.send(Event::FromNode(node, msg)).is_ok());
                    let _ = events.send(Event::NodeLost(node, why));
                })?;
            senders.push(m.sender.clone());
            peers.push(Peer::new(m.sender, m.skew_ms, node, m.hello.host));
        }
        wire::start_heartbeat(senders);
        (Role::Coordinator(peers), token)
    } else {
        let hello = Hello {
            node_rank: topo.node_rank,
            host: host.clone(),
            time_ms: now_ms(),
            fingerprint: plan.fingerprint.clone(),
            preflight: preflight.clone(),
        };
        let (sender, receiver, answer) = match control::join(
            plan.control,
            hello,
            deadline,
            plan.start_timeout,
            &interrupted,
        ) {
            Ok(joined) => joined,
            Err(err) => {
                return Ok(refuse(
                    &format!("{err:#}"),
                    sentinel,
                    exit_code(&got_signal),
                ));
            }
        };
        let token = match answer {
            Msg::Go { token } => token,
            Msg::Reject { message } => {
                return Ok(refuse(
                    &format!("the first host {} refused to start: {message}", topo.ips[0]),
                    sentinel,
                    1,
                ));
            }
            _ => unreachable!("join returns Go or Reject"),
        };
        let events = tx.clone();
        std::thread::Builder::new()
            .name("first host".into())
            .spawn(move || {
                let why = receiver.pump(&|msg| events.send(Event::FromCoordinator(msg)).is_ok());
                let _ = events.send(Event::CoordinatorLost(why));
            })?;
        wire::start_heartbeat(vec![sender.clone()]);
        (
            Role::Member {
                sender,
                first_host: topo.ips[0].to_string(),
            },
            token,
        )
    };
    run_workers(&flags, &plan, &cmd, role, &token, sentinel, tx, rx)
}

/// 130 (as for SIGINT) when the start-up was interrupted, else 1.
fn exit_code(got_signal: &std::cell::Cell<bool>) -> i32 {
    if got_signal.get() { 130 } else { 1 }
}

/// Prints why the job does not start; returns `code`.
fn refuse(why: &str, sentinel: Sentinel, code: i32) -> i32 {
    eprintln!("ringdet launch: {why}");
    sentinel.disarm();
    code
}
