//! The launcher's start-up: check ports, fork the orphan sentinel, then agree with the other
//! hosts' launchers (first host: gather and judge; others: join) before the workers start.
//! [`launch`] is `ringdet launch`; [`start`] runs any [`Plan`], e.g. [`Plan::local`]'s.

use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Instant;

use tracing::{debug, warn};

use super::control::{self, Hello, Msg};
use super::error::{LaunchError, Result};
use super::events::{Event, now_ms};
use super::flags::LaunchFlags;
use super::plan::{Plan, WorkerCommand, job_token, plan, worker_command};
use super::sentinel::Sentinel;
use super::spawn::run_workers;
use super::supervisor::{Outcome, Peer, Role};
use super::{ports, procs, signals, token, wire};

/// Runs `ringdet launch` with its `flags` (`raw_args`, the process's arguments, tell
/// `-- program` from a ringdet subcommand); returns how the job ended. A job that cannot start
/// (taken ports, other hosts missing or different) is logged and ends with code 1 (130 when
/// interrupted), without a root cause.
pub fn launch(flags: LaunchFlags, raw_args: &[String]) -> Result<Outcome> {
    let cmd = worker_command(&flags.command, raw_args)?;
    let plan = plan(&flags, &cmd)?;
    start(&plan, &cmd)
}

/// Starts the job of `plan` on this host, with workers running `cmd`, and supervises it to its
/// end (see [`launch`]).
pub fn start(plan: &Plan, cmd: &WorkerCommand) -> Result<Outcome> {
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
    let sentinel =
        Sentinel::start().map_err(LaunchError::io("cannot start the orphan sentinel"))?;
    procs::become_subreaper();
    let (tx, rx) = mpsc::channel::<Event>();
    signals::forward_signals(tx.clone())
        .map_err(LaunchError::io("cannot install signal handlers"))?;
    let deadline = Instant::now() + plan.start_timeout;
    let got_signal = std::cell::Cell::new(false);
    let interrupted = || {
        if matches!(rx.try_recv(), Ok(Event::Signal(_))) {
            got_signal.set(true);
        }
        got_signal.get()
    };

    let key = token::control_key(&plan.fingerprint.job_id, plan.secret.as_deref());
    let (role, token) = if topo.ips.len() == 1 {
        if !preflight.is_empty() {
            return Ok(refuse(
                &format!("the job cannot start:\n  {}", preflight.join("\n  ")),
                sentinel,
                1,
            ));
        }
        (Role::Solo, job_token(plan)?)
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
            &key,
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
        let token = job_token(plan)?;
        let mut peers = Vec::new();
        let mut senders = Vec::new();
        for m in members {
            if m.skew_ms.abs() > 1000 {
                warn!(
                    "the clock of {} is {} ms off this host's",
                    m.hello.host, m.skew_ms
                );
            }
            m.sender
                .send(&Msg::Go {
                    token: token.clone(),
                })
                .map_err(LaunchError::io(format!("lost {} at start", m.hello.host)))?;
            let (node, events) = (m.hello.node_rank, tx.clone());
            std::thread::Builder::new()
                .name(format!("node {node}"))
                .spawn(move || {
                    let why = m
                        .receiver
                        .pump(&|msg| events.send(Event::FromNode(node, msg)).is_ok());
                    let _ = events.send(Event::NodeLost(node, why));
                })
                .map_err(LaunchError::io("cannot start a control reader thread"))?;
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
        debug!("joining the first host's launcher at {}", plan.control);
        let (sender, receiver, answer) = match control::join(
            plan.control,
            topo.host(),
            hello,
            &key,
            deadline,
            plan.start_timeout,
            &interrupted,
        ) {
            Ok(joined) => joined,
            Err(err) => {
                return Ok(refuse(&err.to_string(), sentinel, exit_code(&got_signal)));
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
            other => {
                let why = format!("the first host's launcher answered {other:?} instead of Go");
                return Ok(refuse(&why, sentinel, 1));
            }
        };
        let events = tx.clone();
        std::thread::Builder::new()
            .name("first host".into())
            .spawn(move || {
                let why = receiver.pump(&|msg| events.send(Event::FromCoordinator(msg)).is_ok());
                let _ = events.send(Event::CoordinatorLost(why));
            })
            .map_err(LaunchError::io("cannot start the control reader thread"))?;
        wire::start_heartbeat(vec![sender.clone()]);
        (
            Role::Member {
                sender,
                first_host: topo.ips[0].to_string(),
            },
            token,
        )
    };
    debug!(
        "starting {} worker(s) of job {}",
        topo.local_world_size(),
        plan.job_id
    );
    run_workers(plan, cmd, role, &token, sentinel, tx, rx)
}

/// 130 (as for SIGINT) when the start-up was interrupted, else 1.
fn exit_code(got_signal: &std::cell::Cell<bool>) -> i32 {
    if got_signal.get() { 130 } else { 1 }
}

/// Logs why the job does not start; it ends with `code`.
fn refuse(why: &str, sentinel: Sentinel, code: i32) -> Outcome {
    tracing::error!("{why}");
    sentinel.disarm();
    Outcome {
        code,
        root_cause: None,
    }
}
