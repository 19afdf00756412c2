//! What went wrong and where: a worker's exit (code or signal), an interrupt, or a lost launcher;
//! the root cause every host prints and the exit code every launcher returns.

use serde::{Deserialize, Serialize};

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitKind {
    /// `exit(code)`.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl ExitKind {
    /// Whether it exited with code 0.
    pub fn success(self) -> bool {
        self == ExitKind::Code(0)
    }
    /// The launcher's exit code for this ending: the code, or 128 + signal.
    pub fn exit_code(self) -> i32 {
        match self {
            ExitKind::Code(code) => code,
            ExitKind::Signal(signal) => 128 + signal,
        }
    }
    /// `exit code 3`, or `killed by SIGKILL (signal 9): out of memory? ...`.
    pub fn describe(self) -> String {
        match self {
            ExitKind::Code(code) => format!("exit code {code}"),
            ExitKind::Signal(signal) => {
                let hint = if signal == libc::SIGKILL {
                    ": out of memory? the kernel's OOM killer sends SIGKILL (check `dmesg`)"
                } else {
                    ""
                };
                format!("killed by {} (signal {signal}){hint}", signal_name(signal))
            }
        }
    }
}

/// The conventional name of a signal number.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => "a signal",
    }
}

/// What failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureKind {
    /// A worker ended with a non-zero code or a signal.
    Worker {
        /// Its global rank.
        rank: usize,
        /// Its rank on its host.
        local_rank: usize,
        /// Its pid (0: it could not be started).
        pid: u32,
        /// How it ended.
        exit: ExitKind,
    },
    /// A worker stayed stopped (SIGSTOP, Ctrl-Z, a debugger) longer than the stall limit: it
    /// makes no progress, and the ranks waiting for it would only time out later.
    Stalled {
        /// Its global rank.
        rank: usize,
        /// Its rank on its host.
        local_rank: usize,
        /// Its pid.
        pid: u32,
        /// How long it had been stopped, in ms, when the launcher gave up on it.
        stopped_ms: u64,
    },
    /// A running worker's progress heartbeats stopped for longer than the stall limit, outside
    /// any collective, while other ranks wait for it inside one (an endless loop, a deadlock).
    Hung {
        /// Its global rank.
        rank: usize,
        /// Its rank on its host.
        local_rank: usize,
        /// Its pid.
        pid: u32,
        /// How long it had made no progress, in ms.
        idle_ms: u64,
        /// Where it stands: `after all_reduce #12`, `before its first collective`.
        position: String,
        /// Its process state letter when last sampled.
        state: Option<char>,
        /// Who waits for it: `ranks 0,2 wait in all_reduce #13`.
        waiting: String,
    },
    /// The launcher received SIGINT/SIGTERM/SIGHUP (Ctrl-C).
    Interrupted {
        /// The signal number.
        signal: i32,
    },
    /// A launcher stopped answering on the control channel.
    LauncherLost {
        /// How it was lost (closed connection, silence).
        detail: String,
    },
}

/// One failure, as reported across the control channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// What failed.
    pub kind: FailureKind,
    /// The host it happened on (or, for a lost launcher, the lost host).
    pub host: String,
    /// That host's node rank.
    pub node_rank: usize,
    /// When it was seen, in ms since the Unix epoch (on the first host's clock once received there).
    pub time_ms: u64,
    /// The worker's log file, on its host.
    pub log: Option<String>,
    /// The last lines of that log.
    pub tail: Vec<String>,
}

impl Failure {
    /// The exit code every launcher returns for this root cause.
    pub fn exit_code(&self) -> i32 {
        match &self.kind {
            FailureKind::Worker { exit, .. } => exit.exit_code(),
            FailureKind::Interrupted { signal } => 128 + signal,
            FailureKind::Stalled { .. }
            | FailureKind::Hung { .. }
            | FailureKind::LauncherLost { .. } => 1,
        }
    }

    /// One line naming rank, host, pid and exit code or signal.
    pub fn summary(&self) -> String {
        let at = format!("host {} (node {})", self.host, self.node_rank);
        match &self.kind {
            FailureKind::Worker {
                rank,
                local_rank,
                pid: 0,
                exit,
            } => format!(
                "rank {rank} (local rank {local_rank}) on {at} could not start: {}",
                exit.describe()
            ),
            FailureKind::Worker {
                rank,
                local_rank,
                pid,
                exit,
            } => format!(
                "rank {rank} (local rank {local_rank}) on {at}, pid {pid}: {}",
                exit.describe()
            ),
            FailureKind::Stalled {
                rank,
                local_rank,
                pid,
                stopped_ms,
            } => format!(
                "rank {rank} (local rank {local_rank}) on {at}, pid {pid}: stopped (process state \
                 T: SIGSTOP, Ctrl-Z or a debugger?) for {:.0} s, making no progress",
                *stopped_ms as f64 / 1000.0
            ),
            FailureKind::Hung {
                rank,
                local_rank,
                pid,
                idle_ms,
                position,
                state,
                waiting,
            } => format!(
                "rank {rank} (local rank {local_rank}) on {at}, pid {pid}: no progress for {:.0} s \
                 {position}, outside any collective ({}), while {waiting}",
                *idle_ms as f64 / 1000.0,
                describe_state(*state)
            ),
            FailureKind::Interrupted { signal } => {
                format!(
                    "the launcher on {at} was interrupted by {}",
                    signal_name(*signal)
                )
            }
            FailureKind::LauncherLost { detail } => {
                format!("the launcher on {at} was lost: {detail}")
            }
        }
    }

    /// The full report: summary, exit code, and the log tail.
    pub fn report(&self) -> String {
        let mut text = format!(
            "ringdet launch: root cause (first failure): {}\nringdet launch: exit code {}\n",
            self.summary(),
            self.exit_code()
        );
        if let Some(log) = &self.log {
            if self.tail.is_empty() {
                text += &format!("ringdet launch: {log} on {} is empty\n", self.host);
            } else {
                text += &format!(
                    "ringdet launch: last {} lines of {log} on {}:\n",
                    self.tail.len(),
                    self.host
                );
                for line in &self.tail {
                    text += &format!("  | {line}\n");
                }
            }
        }
        text
    }
}

/// What a hung process's state letter suggests.
fn describe_state(state: Option<char>) -> String {
    match state {
        Some('R') => "process state R: running, an endless loop?".into(),
        Some('S') => "process state S: sleeping, a deadlock or a blocking read?".into(),
        Some('D') => "process state D: waiting on the disk or a device".into(),
        Some(other) => format!("process state {other}"),
        None => "process state unknown".into(),
    }
}

/// The earliest failure.
pub fn first_in_time(failures: &[Failure]) -> Option<&Failure> {
    failures.iter().min_by_key(|f| f.time_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_map_to_128_plus_and_sigkill_hints_oom() {
        assert_eq!(ExitKind::Signal(9).exit_code(), 137);
        assert!(ExitKind::Signal(9).describe().contains("out of memory?"));
        assert!(ExitKind::Signal(11).describe().contains("SIGSEGV"));
        assert_eq!(ExitKind::Code(3).exit_code(), 3);
        let lost = Failure {
            kind: FailureKind::LauncherLost {
                detail: "connection closed".into(),
            },
            host: "10.0.0.2".into(),
            node_rank: 1,
            time_ms: 5,
            log: None,
            tail: vec![],
        };
        let mut early = lost.clone();
        early.time_ms = 1;
        assert_eq!(first_in_time(&[lost.clone(), early.clone()]), Some(&early));
        assert!(lost.report().contains("10.0.0.2 (node 1) was lost"));
    }
}
