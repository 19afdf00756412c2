//! The launcher's main loop once workers run. One event channel (worker exits, signals, control
//! messages); the first host arbitrates: the first failure it hears of makes it tell every
//! launcher to stop (`Abort`), and once all have stopped it sends the root cause, the earliest
//! failure of all, to everyone (`Final`), so every host prints the same cause and exits with the
//! same code. Every wait in here has a deadline. A worker that stays stopped (state `T` in
//! /proc) longer than the stall limit is a failure too, named as stopped, so the root cause is
//! the rank that hung rather than a healthy one that timed out waiting for it; so is a running
//! worker whose progress heartbeats stopped while other ranks wait for it (`heartbeat`).

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::control::{Msg, Sender};
use super::events::{Event, now_ms};
use super::failure::{ExitKind, Failure, FailureKind, first_in_time};
use super::logs::{Follower, TAIL_LINES, tail};
use super::procs::{LiveGroups, is_stopped, kill_reparented};
use super::sentinel::Sentinel;

mod coordinator;
mod heartbeat;
mod member;

pub use coordinator::Peer;
pub use heartbeat::RankStatus;
use ringdet_collective::progress::Board;

/// A worker this launcher started.
pub struct Slot {
    /// Its pid (and process group id).
    pub pid: u32,
    /// Global rank.
    pub rank: usize,
    /// Local rank.
    pub local_rank: usize,
    /// Its log file.
    pub log: std::path::PathBuf,
    /// Where this run starts in the log.
    pub log_start: u64,
    /// How it ended, once it has.
    pub exit: Option<ExitKind>,
}

/// How the job ended, as this host's launcher saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The launcher's exit code: 0 when every worker on every host succeeded, else the root
    /// cause's (the worker's code, or 128 + signal), clamped to 1..=255.
    pub code: i32,
    /// The root cause, the earliest failure of any host (the same on every host); None on success.
    pub root_cause: Option<Failure>,
}

/// This launcher's place in the job.
pub enum Role {
    /// The only host: no control channel.
    Solo,
    /// The first of several hosts: arbitrates.
    Coordinator(Vec<Peer>),
    /// Another host: reports to the first.
    Member {
        /// Sending half of the connection to the first host.
        sender: Sender,
        /// The first host's IP, for messages.
        first_host: String,
    },
}

struct Stopping {
    sigkill_at: Instant,
    give_up_at: Instant,
    killed: bool,
}

/// Everything the main loop needs.
pub struct Supervisor {
    /// Role in the job.
    pub role: Role,
    /// This host's workers.
    pub slots: Vec<Slot>,
    /// Their live process groups.
    pub live: LiveGroups,
    /// The orphan sentinel.
    pub sentinel: Option<Sentinel>,
    /// Console echo threads.
    pub followers: Vec<Follower>,
    /// This host's IP.
    pub host: String,
    /// This host's node rank.
    pub node_rank: usize,
    /// SIGTERM → SIGKILL delay.
    pub grace: Duration,
    /// How long a worker may stay stopped before the job fails naming it.
    pub stall_limit: Duration,
    /// The event channel.
    pub events: Receiver<Event>,
    failures: Vec<Failure>,
    stopping: Option<Stopping>,
    stop_reported: bool,
    aborted_at: Option<Instant>,
    done_reported: bool,
    coordinator_lost: bool,
    final_by: Option<Instant>,
    interrupts: u32,
    root_cause: Option<Failure>,
    /// Workers seen stopped, by pid: since when (monotonic, and ms since the epoch).
    stopped_since: std::collections::HashMap<u32, (Instant, u64)>,
    /// The progress board this host's workers beat on, if it could be created.
    board: Option<Board>,
    /// Progress samples, this host's and (first host) the others'.
    beats: heartbeat::Beats,
}

impl Supervisor {
    /// A supervisor for workers that have just been started.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        role: Role,
        slots: Vec<Slot>,
        live: LiveGroups,
        sentinel: Sentinel,
        followers: Vec<Follower>,
        host: String,
        node_rank: usize,
        grace: Duration,
        stall_limit: Duration,
        events: Receiver<Event>,
        board: Option<Board>,
    ) -> Supervisor {
        Supervisor {
            role,
            slots,
            live,
            sentinel: Some(sentinel),
            followers,
            host,
            node_rank,
            grace,
            stall_limit,
            events,
            failures: Vec::new(),
            stopping: None,
            stop_reported: false,
            aborted_at: None,
            done_reported: false,
            coordinator_lost: false,
            final_by: None,
            interrupts: 0,
            root_cause: None,
            stopped_since: std::collections::HashMap::new(),
            board,
            beats: heartbeat::Beats::default(),
        }
    }

    /// Runs until the job is over on this host; returns how it ended.
    pub fn run(mut self) -> Outcome {
        loop {
            let wait = self.next_wake().saturating_duration_since(Instant::now());
            let outcome = match self.events.recv_timeout(wait) {
                Ok(event) => self.on_event(event),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(self.finish(self.root_guess())),
            };
            if let Some(code) = outcome.or_else(|| self.check_progress()) {
                return Outcome {
                    code,
                    root_cause: self.root_cause.take(),
                };
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let mut wake = Instant::now() + Duration::from_millis(500);
        if let Some(stop) = &self.stopping {
            wake = wake.min(if stop.killed {
                stop.give_up_at
            } else {
                stop.sigkill_at
            });
        }
        if let Some(by) = self.final_by {
            wake = wake.min(by);
        }
        wake
    }

    fn on_event(&mut self, event: Event) -> Option<i32> {
        match event {
            Event::WorkerExited { pid, kind, at_ms } => self.on_worker_exit(pid, kind, at_ms),
            Event::Signal(signal) => self.on_signal(signal),
            Event::FromNode(node, msg) => self.on_member_msg(node, msg),
            Event::NodeLost(node, detail) => self.on_member_lost(node, detail),
            Event::FromCoordinator(msg) => self.on_coordinator_msg(msg),
            Event::CoordinatorLost(detail) => self.on_coordinator_lost(detail),
        }
    }

    fn on_worker_exit(&mut self, pid: u32, kind: ExitKind, at_ms: u64) -> Option<i32> {
        if let Some(sentinel) = &self.sentinel {
            sentinel.release(pid);
        }
        let slot = self.slots.iter_mut().find(|s| s.pid == pid)?;
        tracing::debug!("rank {} (pid {pid}) ended: {}", slot.rank, kind.describe());
        slot.exit = Some(kind);
        if kind.success() || self.stopping.is_some() {
            return None;
        }
        let failure = Failure {
            kind: FailureKind::Worker {
                rank: slot.rank,
                local_rank: slot.local_rank,
                pid,
                exit: kind,
            },
            host: self.host.clone(),
            node_rank: self.node_rank,
            time_ms: at_ms,
            log: Some(slot.log.display().to_string()),
            tail: tail(&slot.log, slot.log_start, TAIL_LINES),
        };
        tracing::error!("{}; stopping the job", failure.summary());
        self.local_failure(failure)
    }

    fn on_signal(&mut self, signal: i32) -> Option<i32> {
        self.interrupts += 1;
        if self.interrupts == 1 {
            tracing::info!(
                "stopping the job ({} received); send it again to kill the workers at once",
                super::failure::signal_name(signal)
            );
            let failure = self.failure_here(FailureKind::Interrupted { signal });
            return self.local_failure(failure);
        }
        tracing::warn!("second signal: killing the workers now");
        Some(self.finish(self.root_guess()))
    }

    fn failure_here(&self, kind: FailureKind) -> Failure {
        Failure {
            kind,
            host: self.host.clone(),
            node_rank: self.node_rank,
            time_ms: now_ms(),
            log: None,
            tail: vec![],
        }
    }

    fn local_failure(&mut self, failure: Failure) -> Option<i32> {
        match &self.role {
            Role::Solo => {
                self.failures.push(failure);
                self.begin_stop();
                None
            }
            Role::Member { sender, .. } => {
                let _ = sender.send(&Msg::Failed {
                    failure: failure.clone(),
                });
                self.failures.push(failure);
                self.begin_stop();
                None
            }
            Role::Coordinator(_) => self.coordinator_failure(failure),
        }
    }

    /// `rank 1 (pid 42, stopped), rank 3 (pid 44)`: this host's workers still running.
    fn running_ranks(&self) -> String {
        running_ranks(&self.slots)
    }

    fn begin_stop(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        let ranks = self.running_ranks();
        let running = self.live.signal_all(libc::SIGTERM);
        // A stopped worker acts on SIGTERM only once continued.
        self.live.signal_all(libc::SIGCONT);
        if running > 0 {
            tracing::info!(
                "stopping {ranks} on {} (SIGTERM, SIGKILL after {:.0} s)",
                self.host,
                self.grace.as_secs_f64()
            );
        }
        let now = Instant::now();
        self.stopping = Some(Stopping {
            sigkill_at: now + self.grace,
            give_up_at: now + self.grace + Duration::from_secs(5),
            killed: false,
        });
    }

    /// Stop deadlines, completed stops, all-done and final deadlines.
    fn check_progress(&mut self) -> Option<i32> {
        let now = Instant::now();
        let all_exited = self.slots.iter().all(|s| s.exit.is_some());
        if let Some(stop) = &mut self.stopping {
            if !all_exited && !stop.killed && now >= stop.sigkill_at {
                stop.killed = true;
                let ranks = running_ranks(&self.slots);
                self.live.signal_all(libc::SIGKILL);
                tracing::warn!(
                    "{ranks} on {} ignored SIGTERM for the grace period: SIGKILL",
                    self.host
                );
            }
            let gave_up = !all_exited && stop.killed && now >= stop.give_up_at;
            if gave_up {
                tracing::error!(
                    "{} on {} did not exit after SIGKILL (D state?)",
                    self.running_ranks(),
                    self.host
                );
            }
            if (all_exited || gave_up) && !self.stop_reported {
                self.stop_reported = true;
                return self.on_local_stopped();
            }
        } else if all_exited && !self.done_reported {
            self.done_reported = true;
            return self.on_local_done();
        } else if let Some(failure) = self.stalled_worker(now) {
            tracing::error!("{}; stopping the job", failure.summary());
            return self.local_failure(failure);
        } else if let Some(failure) = self.hung_worker(now) {
            tracing::error!("{}; stopping the job", failure.summary());
            return self.local_failure(failure);
        }
        if self.final_by.is_some_and(|by| now >= by) {
            return match self.role {
                Role::Coordinator(_) => self.maybe_finalize(true),
                _ => Some(self.finish(self.root_guess())),
            };
        }
        None
    }

    /// The first running worker stopped for longer than the stall limit, as a failure dated
    /// when it was first seen stopped; notes which workers are stopped now.
    fn stalled_worker(&mut self, now: Instant) -> Option<Failure> {
        let mut stalled = None;
        for slot in self.slots.iter().filter(|s| s.exit.is_none() && s.pid != 0) {
            if !is_stopped(slot.pid) {
                self.stopped_since.remove(&slot.pid);
                continue;
            }
            let (since, since_ms) = *self
                .stopped_since
                .entry(slot.pid)
                .or_insert_with(|| (now, now_ms()));
            if stalled.is_none() && now.duration_since(since) >= self.stall_limit {
                let kind = FailureKind::Stalled {
                    rank: slot.rank,
                    local_rank: slot.local_rank,
                    pid: slot.pid,
                    stopped_ms: now.duration_since(since).as_millis() as u64,
                };
                stalled = Some(Failure {
                    kind,
                    host: self.host.clone(),
                    node_rank: self.node_rank,
                    time_ms: since_ms,
                    log: Some(slot.log.display().to_string()),
                    tail: tail(&slot.log, slot.log_start, TAIL_LINES),
                });
            }
        }
        stalled
    }

    fn on_local_stopped(&mut self) -> Option<i32> {
        match &self.role {
            Role::Solo => Some(self.finish(self.root_guess())),
            Role::Member { sender, .. } => {
                if self.coordinator_lost {
                    return Some(self.finish(self.root_guess()));
                }
                let _ = sender.send(&Msg::Stopped);
                self.final_by = Some(Instant::now() + self.grace + Duration::from_secs(20));
                None
            }
            Role::Coordinator(_) => self.maybe_finalize(false),
        }
    }

    fn on_local_done(&mut self) -> Option<i32> {
        match &self.role {
            Role::Solo => Some(self.finish(None)),
            Role::Member { sender, .. } => {
                let _ = sender.send(&Msg::Done);
                None
            }
            Role::Coordinator(_) => self.maybe_succeed(),
        }
    }

    fn root_guess(&self) -> Option<Failure> {
        first_in_time(&self.failures).cloned()
    }

    /// Kills whatever is left, keeps the root cause for [`Outcome`], releases the sentinel;
    /// returns the exit code.
    fn finish(&mut self, root: Option<Failure>) -> i32 {
        if self.live.any() {
            self.live.signal_all(libc::SIGKILL);
            let until = Instant::now() + Duration::from_secs(2);
            while self.live.any() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let keep: Vec<u32> = self.sentinel.iter().map(Sentinel::pid).collect();
        kill_reparented(&self.live, &keep);
        for follower in self.followers.drain(..) {
            follower.finish();
        }
        let code = match &root {
            Some(failure) => failure.exit_code().clamp(1, 255),
            None => 0,
        };
        tracing::debug!("the job is over on this host: exit code {code}");
        self.root_cause = root;
        if let Some(sentinel) = self.sentinel.take() {
            sentinel.disarm();
        }
        code
    }
}

/// `rank 1 (pid 42, stopped), rank 3 (pid 44)`: the workers of `slots` still running.
fn running_ranks(slots: &[Slot]) -> String {
    slots
        .iter()
        .filter(|s| s.exit.is_none() && s.pid != 0)
        .map(|s| {
            let stopped = if is_stopped(s.pid) { ", stopped" } else { "" };
            format!("rank {} (pid {}{stopped})", s.rank, s.pid)
        })
        .collect::<Vec<_>>()
        .join(", ")
}
