//! The first host's side of the job: it hears every failure, tells every launcher to stop
//! (`Abort`), waits until all have stopped, and sends the root cause, the earliest failure, to
//! all (`Final`); or, when every host is done, sends success.

use std::time::{Duration, Instant};

use super::Role;
use super::Supervisor;
use crate::control::{Msg, Sender};
use crate::events::now_ms;
use crate::failure::{Failure, FailureKind};

/// Another host's launcher, as the first host tracks it.
pub struct Peer {
    /// Sending half of its connection.
    pub sender: Sender,
    /// Its clock minus ours.
    pub skew_ms: i64,
    /// Its node rank.
    pub node_rank: usize,
    /// Its IP.
    pub host: String,
    done: bool,
    stopped: bool,
    lost: bool,
}

impl Peer {
    /// A peer that just joined.
    pub fn new(sender: Sender, skew_ms: i64, node_rank: usize, host: String) -> Peer {
        Peer {
            sender,
            skew_ms,
            node_rank,
            host,
            done: false,
            stopped: false,
            lost: false,
        }
    }
}

impl Supervisor {
    pub(super) fn coordinator_failure(&mut self, failure: Failure) -> Option<i32> {
        self.failures.push(failure.clone());
        if self.aborted_at.is_none() {
            self.aborted_at = Some(Instant::now());
            self.final_by = Some(Instant::now() + self.grace + Duration::from_secs(15));
            if let Role::Coordinator(peers) = &self.role {
                for peer in peers.iter().filter(|p| !p.lost) {
                    let _ = peer.sender.send(&Msg::Abort {
                        root_cause: failure.clone(),
                    });
                }
            }
            self.begin_stop();
        }
        None
    }

    pub(super) fn on_member_msg(&mut self, node: usize, msg: Msg) -> Option<i32> {
        let Role::Coordinator(peers) = &mut self.role else {
            return None;
        };
        let peer = peers.iter_mut().find(|p| p.node_rank == node)?;
        match msg {
            Msg::Failed { mut failure } => {
                failure.time_ms = (failure.time_ms as i64 - peer.skew_ms).max(0) as u64;
                tracing::error!("{}", failure.summary());
                self.coordinator_failure(failure)
            }
            Msg::Done => {
                peer.done = true;
                self.maybe_succeed()
            }
            Msg::Stopped => {
                peer.stopped = true;
                self.maybe_finalize(false)
            }
            Msg::Progress { ranks } => {
                let host = peer.host.clone();
                self.beats.remote_samples(node, host, ranks);
                None
            }
            _ => None,
        }
    }

    pub(super) fn on_member_lost(&mut self, node: usize, detail: String) -> Option<i32> {
        let Role::Coordinator(peers) = &mut self.role else {
            return None;
        };
        let peer = peers.iter_mut().find(|p| p.node_rank == node)?;
        peer.lost = true;
        let failure = Failure {
            kind: FailureKind::LauncherLost { detail },
            host: peer.host.clone(),
            node_rank: node,
            time_ms: now_ms(),
            log: None,
            tail: vec![],
        };
        tracing::error!("{}", failure.summary());
        if self.aborted_at.is_some() {
            self.failures.push(failure);
            return self.maybe_finalize(false);
        }
        self.coordinator_failure(failure)
    }

    pub(super) fn maybe_succeed(&mut self) -> Option<i32> {
        let Role::Coordinator(peers) = &self.role else {
            return None;
        };
        if self.aborted_at.is_some() || !self.done_reported || !peers.iter().all(|p| p.done) {
            return None;
        }
        for peer in peers {
            let _ = peer.sender.send(&Msg::Final { root_cause: None });
        }
        Some(self.finish(None))
    }

    pub(super) fn maybe_finalize(&mut self, deadline_passed: bool) -> Option<i32> {
        let Role::Coordinator(peers) = &self.role else {
            return None;
        };
        self.aborted_at?;
        let everyone = self.stop_reported && peers.iter().all(|p| p.stopped || p.lost);
        if !everyone && !deadline_passed {
            return None;
        }
        let root = self.root_guess();
        for peer in peers.iter().filter(|p| !p.lost) {
            let _ = peer.sender.send(&Msg::Final {
                root_cause: root.clone(),
            });
        }
        Some(self.finish(root))
    }
}
