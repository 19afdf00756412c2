//! From flags to running workers: resolve the topology, check ports, agree with the other hosts
//! (control channel), write the logs' scaffolding, spawn the workers and hand over to the
//! supervisor. Returns the launcher's exit code.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::control::{self, Hello, Msg};
use super::env::{JobInfo, REMOVED, worker_env};
use super::events::{Event, now_ms};
use super::failure::ExitKind;
use super::flags::LaunchFlags;
use super::logs::{self, Follower};
use super::ranks::{self, Topology};
use super::same_job::{self, Fingerprint};
use super::supervisor::{Peer, Role, Slot, Supervisor};
use super::{interfaces, ports, procs, sentinel::Sentinel, signals, token, wire};

/// The program each worker runs.
pub struct WorkerCommand {
    /// Executable.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// How it is described in the same-job check (the ringdet binary's path left out).
    pub shown: Vec<String>,
}

/// Decides between `<ringdet subcommand ...>` and `-- <program ...>` from the raw arguments:
/// the latter when the command follows a literal `--`.
pub fn worker_command(command: &[String], raw_args: &[String]) -> anyhow::Result<WorkerCommand> {
    if command.is_empty() {
        bail!(
            "no worker given: `ringdet launch [options] <ringdet subcommand ...>` or `ringdet launch [options] -- <program ...>`"
        );
    }
    let after_dashes = raw_args
        .iter()
        .position(|a| a == "--")
        .map(|i| &raw_args[i + 1..]);
    if after_dashes == Some(command) {
        return Ok(WorkerCommand {
            program: command[0].clone(),
            args: command[1..].to_vec(),
            shown: command.to_vec(),
        });
    }
    let exe =
        std::env::current_exe().context("cannot find the ringdet binary to start workers with")?;
    let mut shown = vec!["ringdet".to_string()];
    shown.extend(command.iter().cloned());
    Ok(WorkerCommand {
        program: exe.display().to_string(),
        args: command.to_vec(),
        shown,
    })
}

/// Everything resolved before talking to other hosts.
struct Plan {
    topo: Topology,
    control: SocketAddr,
    fingerprint: Fingerprint,
    secret: Option<Vec<u8>>,
    log_dir: PathBuf,
    start_timeout: Duration,
}

fn plan(flags: &LaunchFlags, cmd: &WorkerCommand) -> anyhow::Result<Plan> {
    let ips = ranks::parse_ips(&flags.ips)?;
    let itfs =
        interfaces::local_addresses().context("cannot list this machine's network interfaces")?;
    let pod_ip = std::env::var("POD_IP").ok();
    let node_rank = ranks::find_this_host(&ips, flags.host.as_deref(), pod_ip.as_deref(), &itfs)?;
    let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    let devices = ranks::local_devices(
        flags.gpus.as_deref(),
        flags.nproc_per_node,
        visible.as_deref(),
        ranks::driver_gpu_count(),
    )?;
    let start_port = match (flags.start_port, std::env::var("FLAGS_START_PORT").ok()) {
        (Some(port), _) => port,
        (None, Some(text)) => text
            .trim()
            .parse()
            .with_context(|| format!("FLAGS_START_PORT={text:?} is not a port"))?,
        (None, None) => 6070,
    };
    if start_port == 0 || usize::from(start_port) + devices.len() - 1 > 65535 {
        bail!(
            "--start_port {start_port} with {} workers leaves the port range 1..65535",
            devices.len()
        );
    }
    let control_port = match flags.control_port {
        Some(port) => port,
        None if start_port > 1 => start_port - 1,
        None => bail!(
            "--start_port 1 leaves no room for the control port (start_port - 1): pass --control_port"
        ),
    };
    if !(flags.start_timeout > 0.0 && flags.grace_period >= 0.0) {
        bail!("--start_timeout must be positive and --grace_period non-negative");
    }
    let topo = Topology {
        ips,
        node_rank,
        devices,
        start_port,
    };
    let secret = token::user_secret(
        flags.job_secret_file.as_deref(),
        std::env::var("RINGDET_JOB_SECRET").ok(),
    )?;
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let fingerprint = Fingerprint {
        version: env!("CARGO_PKG_VERSION").to_string(),
        command: cmd.shown.clone(),
        files: same_job::hash_configs(&cwd, &same_job::config_paths(&cmd.shown)),
        local_world_size: topo.local_world_size(),
        ips: topo.ips.iter().map(|ip| ip.to_string()).collect(),
        start_port,
        job_id: flags.job_id.clone(),
        secret_proof: secret
            .as_deref()
            .map(|s| token::secret_proof(&flags.job_id, s)),
    };
    std::fs::create_dir_all(&flags.log_dir)
        .with_context(|| format!("cannot create --log_dir {}", flags.log_dir.display()))?;
    let log_dir = std::fs::canonicalize(&flags.log_dir)?;
    Ok(Plan {
        control: SocketAddr::new(topo.ips[0], control_port),
        topo,
        fingerprint,
        secret,
        log_dir,
        start_timeout: Duration::from_secs_f64(flags.start_timeout),
    })
}

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
    let interrupted = || matches!(rx.try_recv(), Ok(Event::Signal(_)));

    let (role, token) = if topo.ips.len() == 1 {
        if !preflight.is_empty() {
            return Ok(refuse(
                &format!("the job cannot start:\n  {}", preflight.join("\n  ")),
                sentinel,
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
                return Ok(refuse(&why, sentinel));
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
                return Ok(refuse(&why, sentinel));
            }
        };
        if let Some(why) = control::verdict(&plan.fingerprint, &preflight, &host, &members) {
            for m in &members {
                let _ = m.sender.send(&Msg::Reject {
                    message: why.clone(),
                });
            }
            return Ok(refuse(&why, sentinel));
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
            Err(err) => return Ok(refuse(&format!("{err:#}"), sentinel)),
        };
        let token = match answer {
            Msg::Go { token } => token,
            Msg::Reject { message } => {
                return Ok(refuse(
                    &format!("the first host {} refused to start: {message}", topo.ips[0]),
                    sentinel,
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

/// The job token: derived from the user's secret, else random (the first host's, sent with Go).
fn job_token(plan: &Plan) -> anyhow::Result<String> {
    match &plan.secret {
        Some(secret) => Ok(token::derive_token(&plan.fingerprint.job_id, secret)),
        None => token::random_token(),
    }
}

/// Prints why the job does not start; exit code 1.
fn refuse(why: &str, sentinel: Sentinel) -> i32 {
    eprintln!("ringdet launch: {why}");
    sentinel.disarm();
    1
}

#[allow(clippy::too_many_arguments)]
fn run_workers(
    flags: &LaunchFlags,
    plan: &Plan,
    cmd: &WorkerCommand,
    role: Role,
    token: &str,
    sentinel: Sentinel,
    tx: mpsc::Sender<Event>,
    rx: Receiver<Event>,
) -> anyhow::Result<i32> {
    let topo = &plan.topo;
    let job = JobInfo {
        job_id: &flags.job_id,
        token,
        log_dir: &plan.log_dir,
    };
    logs::write_endpoints(&plan.log_dir, &topo.endpoints())?;
    let show = shown_ranks(flags.show_ranks.as_deref(), topo)?;
    let live = procs::LiveGroups::default();
    let mut slots = Vec::new();
    let mut followers = Vec::new();
    let mut spawn_failed = false;
    for local_rank in 0..topo.local_world_size() {
        let rank = topo.global_rank(local_rank);
        let header = format!(
            "ringdet launch job {} rank {rank} started at {} ms",
            flags.job_id,
            now_ms()
        );
        let mut log = logs::open_worker_log(&plan.log_dir, rank, &header)?;
        let env = worker_env(topo, local_rank, &job);
        // Spawned from this (the main) thread, which outlives the workers: PDEATHSIG follows it.
        let pid = match procs::spawn(&cmd.program, &cmd.args, &env, &REMOVED, &log.file, &live) {
            Ok(pid) => pid,
            Err(err) => {
                // Fails like a shell's "command not found" (127), with the reason in its log.
                let _ = writeln!(
                    log.file,
                    "ringdet launch: cannot start `{}`: {err}",
                    cmd.program
                );
                let failed = Event::WorkerExited {
                    pid: 0,
                    kind: ExitKind::Code(127),
                    at_ms: now_ms(),
                };
                let _ = tx.send(failed);
                spawn_failed = true;
                0
            }
        };
        if pid != 0 {
            sentinel.watch(pid);
        }
        if show.contains(&rank) {
            followers.push(Follower::start(
                log.path.clone(),
                log.start,
                format!("[r{rank}]"),
            )?);
        }
        slots.push(Slot {
            pid,
            rank,
            local_rank,
            log: log.path,
            log_start: log.start,
            exit: None,
        });
        if spawn_failed {
            break;
        }
    }
    procs::start_reaper(live.clone(), tx.clone());
    drop(tx);
    let supervisor = Supervisor::new(
        role,
        slots,
        live,
        sentinel,
        followers,
        topo.host().to_string(),
        topo.node_rank,
        Duration::from_secs_f64(flags.grace_period),
        rx,
    );
    Ok(supervisor.run())
}

/// Global ranks echoed on this console: `all`, a list, or (default) this host's first worker.
fn shown_ranks(spec: Option<&str>, topo: &Topology) -> anyhow::Result<Vec<usize>> {
    match spec.map(str::trim) {
        None => Ok(vec![topo.global_rank(0)]),
        Some("all") => Ok((0..topo.world_size()).collect()),
        Some(list) => list
            .split(',')
            .map(|r| {
                r.trim()
                    .parse()
                    .with_context(|| format!("--show_ranks entry `{r}` is not a rank"))
            })
            .collect(),
    }
}
