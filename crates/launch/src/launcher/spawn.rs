//! Starting this host's workers: their logs, environment and process groups, the console
//! echo, the reaper; then the supervisor runs the job to its end.

use std::io::Write;
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use anyhow::Context;

use super::env::{JobInfo, REMOVED, worker_env};
use super::events::{Event, now_ms};
use super::failure::ExitKind;
use super::flags::LaunchFlags;
use super::logs::{self, Follower};
use super::plan::{Plan, WorkerCommand};
use super::procs;
use super::ranks::Topology;
use super::sentinel::Sentinel;
use super::supervisor::{Role, Slot, Supervisor};

#[allow(clippy::too_many_arguments)]
pub fn run_workers(
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
    let code = supervisor.run();
    // Every worker of this host has exited: remove shared-memory files a killed one left.
    if let Err(e) = ringdet_collective::remove_host_files(token.as_bytes(), &topo.endpoints()) {
        eprintln!("ringdet launch: could not remove the job's files in /dev/shm: {e}");
    }
    Ok(code)
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
