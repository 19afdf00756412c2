//! Starting this host's workers: their logs, environment and process groups, the console
//! echo, the reaper; then the supervisor runs the job to its end.

use std::io::Write;
use std::sync::mpsc::{self, Receiver};

use tracing::debug;

use super::env::{JobInfo, REMOVED, worker_env};
use super::error::{LaunchError, Result};
use super::events::{Event, now_ms};
use super::failure::ExitKind;
use super::logs::{self, Follower};
use super::plan::{Plan, WorkerCommand};
use super::sentinel::Sentinel;
use super::supervisor::{Outcome, Role, Slot, Supervisor};
use super::{job_files, procs};
use ringdet_collective::progress::Board;

/// Starts this host's workers of `plan` running `cmd` with the job `token`, then supervises them
/// (in `role`, with the events of `tx`/`rx`) until the job is over; returns how it ended.
pub fn run_workers(
    plan: &Plan,
    cmd: &WorkerCommand,
    role: Role,
    token: &str,
    sentinel: Sentinel,
    tx: mpsc::Sender<Event>,
    rx: Receiver<Event>,
) -> Result<Outcome> {
    let topo = &plan.topo;
    logs::write_endpoints(&plan.log_dir, &topo.endpoints())?;
    let stale = job_files::remove_stale();
    if stale > 0 {
        tracing::info!("removed {stale} file(s) that dead jobs left in /dev/shm");
    }
    // Without a board the stopped-worker check still runs; hung-but-running ranks go unnamed.
    let board_path = job_files::progress_path(std::process::id());
    let board = Board::create(&board_path, topo.local_world_size())
        .map_err(|e| {
            tracing::warn!(
                "cannot create the progress board {}: {e}; a rank that hangs while running \
                 will not be named",
                board_path.display()
            )
        })
        .ok();
    let job = JobInfo {
        job_id: &plan.job_id,
        token,
        log_dir: &plan.log_dir,
        progress: board.as_ref().map(Board::path),
    };
    let record = job_files::write_record(token, &topo.endpoints())
        .map_err(|e| tracing::warn!("cannot record the job's /dev/shm files: {e}"))
        .ok();
    let live = procs::LiveGroups::default();
    let mut slots = Vec::new();
    let mut followers = Vec::new();
    let mut spawn_failed = false;
    if let Some(threads) = crate::env::worker_threads(topo.local_world_size()) {
        tracing::info!(
            "{} workers on this host: {} set to {threads} for each (set it yourself to choose)",
            topo.local_world_size(),
            crate::env::RAYON_THREADS
        );
    }
    for local_rank in 0..topo.local_world_size() {
        let rank = topo.global_rank(local_rank);
        let header = format!(
            "ringdet launch job {} rank {rank} started at {} ms",
            plan.job_id,
            now_ms()
        );
        let mut log = logs::open_worker_log(&plan.log_dir, rank, &header)?;
        let env = worker_env(topo, local_rank, &job);
        // Spawned from this (the main) thread, which outlives the workers: PDEATHSIG follows it.
        let pid = match procs::spawn(&cmd.program, &cmd.args, &env, &REMOVED, &log.file, &live) {
            Ok(pid) => {
                let command_line: Vec<&str> = std::iter::once(cmd.program.as_str())
                    .chain(cmd.args.iter().map(String::as_str))
                    .collect();
                debug!(
                    "rank {rank} (local rank {local_rank}): pid {pid}, `{}`, log {}",
                    command_line.join(" "),
                    log.path.display()
                );
                pid
            }
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
        if plan.echo.ranks.contains(&rank) {
            let prefix = if plan.echo.prefixed {
                format!("[r{rank}] ")
            } else {
                String::new()
            };
            let follower = Follower::start(log.path.clone(), log.start, prefix)
                .map_err(LaunchError::io("cannot start the console echo thread"))?;
            followers.push(follower);
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
        plan.grace,
        plan.stall_limit,
        rx,
        board,
    );
    let outcome = supervisor.run();
    // Every worker of this host has exited: remove shared-memory files a killed one left.
    let removed = match &record {
        Some(record) => job_files::remove_job(record),
        None => ringdet_collective::remove_host_files(token.as_bytes(), &topo.endpoints()),
    };
    if let Err(e) = removed {
        tracing::warn!("could not remove the job's files in /dev/shm: {e}");
    }
    let _ = std::fs::remove_file(&board_path);
    Ok(outcome)
}
