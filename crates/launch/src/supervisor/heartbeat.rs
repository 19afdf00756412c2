//! Hung-but-running ranks. The launcher keeps a progress board in `/dev/shm` that its workers'
//! collectives write to (`ringdet_collective::progress`), samples it at every turn of the main
//! loop and measures on its own clock how long each rank's beat counter has stood still. The
//! first host (or a lone host) gathers every host's samples (other hosts send theirs each second
//! as `Progress`) and names the rank the others wait on, using the collective's `find_hung`; a
//! rank blocked inside a collective waiting for a hung peer is never the one named.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use ringdet_collective::progress::{RankProgress, describe_position, find_hung};
use serde::{Deserialize, Serialize};

use super::{Role, Slot, Supervisor};
use crate::control::Msg;
use crate::events::now_ms;
use crate::failure::{Failure, FailureKind};
use crate::logs::{TAIL_LINES, tail};
use crate::procs::{process_state, stat_field};

/// How often another host sends its samples to the first host.
const SEND_EVERY: Duration = Duration::from_secs(1);
/// Samples of another host older than this are not used (its workers may have exited since).
const SAMPLES_EXPIRE: Duration = Duration::from_secs(5);

/// One rank's progress as its host's launcher saw it, sent to the first host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankStatus {
    /// Global rank.
    pub rank: usize,
    /// Rank on its host.
    pub local_rank: usize,
    /// Its pid.
    pub pid: u32,
    /// The collective it is inside, as (kind, number); None between collectives.
    pub in_op: Option<(String, u64)>,
    /// Collectives it has completed.
    pub completed: u64,
    /// The kind of its last collective.
    pub last_kind: Option<String>,
    /// How long its beat counter had stood still when sampled, in ms.
    pub idle_ms: u64,
    /// Its process state letter from /proc (`R`, `S`, `D`, ...), when sampled.
    pub state: Option<char>,
}

/// What the launcher remembers between samples.
#[derive(Default)]
pub struct Beats {
    /// Per local rank: the last beat count seen and when it changed.
    seen: HashMap<usize, (u64, Instant)>,
    /// Per other host (first host only): its last samples, when they came, and its IP.
    remote: HashMap<usize, (Vec<RankStatus>, Instant, String)>,
    /// When this host last sent its samples (other hosts).
    sent_at: Option<Instant>,
}

impl Beats {
    /// Keeps another host's samples (first host).
    pub fn remote_samples(&mut self, node: usize, host: String, ranks: Vec<RankStatus>) {
        self.remote.insert(node, (ranks, Instant::now(), host));
    }
}

impl Supervisor {
    /// This host's running workers that joined the board, sampled now. Stopped ones (state T)
    /// are left to the stopped-worker check, which names them as stopped.
    fn sample_local(&mut self, now: Instant) -> Vec<RankStatus> {
        let Some(board) = &self.board else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for slot in self.slots.iter().filter(|s| s.exit.is_none() && s.pid != 0) {
            let state = board.read(slot.local_rank);
            // The worker itself, or a process of its group (`sh -c 'python train.py'`), joined;
            // a worker that never joined a communicator is not judged.
            let joined = state.pid == slot.pid
                || (state.pid != 0
                    && stat_field(state.pid, 5).is_some_and(|pgrp| pgrp == slot.pid.to_string()));
            if !joined {
                continue;
            }
            let (beats, since) = self
                .beats
                .seen
                .entry(slot.local_rank)
                .or_insert((state.beats, now));
            if *beats != state.beats {
                *beats = state.beats;
                *since = now;
            }
            let proc_state = process_state(state.pid);
            if matches!(proc_state, Some('T' | 't')) {
                continue;
            }
            out.push(RankStatus {
                rank: slot.rank,
                local_rank: slot.local_rank,
                pid: slot.pid,
                in_op: state.in_op.map(|(kind, id)| (kind.to_string(), id)),
                completed: state.completed,
                last_kind: state.last_kind.map(str::to_string),
                idle_ms: now.duration_since(*since).as_millis() as u64,
                state: proc_state,
            });
        }
        out
    }

    /// Samples the board; another host sends its samples to the first host, the first (or only)
    /// host names a rank that stopped making progress while others wait for it.
    pub(super) fn hung_worker(&mut self, now: Instant) -> Option<Failure> {
        let local = self.sample_local(now);
        match &self.role {
            Role::Member { sender, .. } => {
                let due = self
                    .beats
                    .sent_at
                    .is_none_or(|at| now.duration_since(at) >= SEND_EVERY);
                // Sent even when empty: the first host then forgets workers that have exited.
                if due {
                    self.beats.sent_at = Some(now);
                    let _ = sender.send(&Msg::Progress { ranks: local });
                }
                None
            }
            Role::Solo | Role::Coordinator(_) => self.judge(now, local),
        }
    }

    fn judge(&self, now: Instant, local: Vec<RankStatus>) -> Option<Failure> {
        // (status, host, node rank) of every rank known, remote idle times aged to now.
        let mut all: Vec<(RankStatus, String, usize)> = local
            .into_iter()
            .map(|r| (r, self.host.clone(), self.node_rank))
            .collect();
        for (node, (ranks, at, host)) in &self.beats.remote {
            if now.duration_since(*at) > SAMPLES_EXPIRE {
                continue;
            }
            let age = now.duration_since(*at).as_millis() as u64;
            for r in ranks {
                let mut r = r.clone();
                r.idle_ms += age;
                all.push((r, host.clone(), *node));
            }
        }
        let progress: Vec<RankProgress> = all
            .iter()
            .map(|(r, _, _)| RankProgress {
                rank: r.rank,
                in_op: r.in_op.clone(),
                completed: r.completed,
                last_kind: r.last_kind.clone(),
                idle_ms: r.idle_ms,
            })
            .collect();
        let limit_ms = self.stall_limit.as_millis() as u64;
        let hung = find_hung(&progress, limit_ms)?;
        let (suspect, host, node_rank) = &all[hung.suspect];
        let mut by_op: BTreeMap<(u64, String), Vec<usize>> = BTreeMap::new();
        for &w in &hung.waiters {
            if let Some((kind, id)) = &progress[w].in_op {
                by_op
                    .entry((*id, kind.clone()))
                    .or_default()
                    .push(progress[w].rank);
            }
        }
        let waiting = by_op
            .iter()
            .map(|((id, kind), ranks)| {
                let mut ranks = ranks.clone();
                ranks.sort_unstable();
                let list: Vec<String> = ranks.iter().map(ToString::to_string).collect();
                let who = if ranks.len() == 1 { "rank" } else { "ranks" };
                let verb = if ranks.len() == 1 { "waits" } else { "wait" };
                format!("{who} {} {verb} in {kind} #{id}", list.join(","))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let local_slot: Option<&Slot> = (*node_rank == self.node_rank)
            .then(|| self.slots.iter().find(|s| s.pid == suspect.pid))
            .flatten();
        Some(Failure {
            kind: FailureKind::Hung {
                rank: suspect.rank,
                local_rank: suspect.local_rank,
                pid: suspect.pid,
                idle_ms: suspect.idle_ms,
                position: describe_position(&progress[hung.suspect]),
                state: suspect.state,
                waiting,
            },
            host: host.clone(),
            node_rank: *node_rank,
            time_ms: now_ms().saturating_sub(suspect.idle_ms),
            log: local_slot.map(|s| s.log.display().to_string()),
            tail: local_slot
                .map(|s| tail(&s.log, s.log_start, TAIL_LINES))
                .unwrap_or_default(),
        })
    }
}
