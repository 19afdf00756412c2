//! The control channel's wire format: one JSON message per line over TCP, every read and write
//! bounded by a deadline, and a heartbeat so a silent peer is noticed within `SILENCE_LIMIT`.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::failure::Failure;
use super::same_job::Fingerprint;

/// How often each side sends `Ping`.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A peer silent this long is lost.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(10);
/// The longest message accepted.
const MAX_LINE: usize = 1 << 20;

/// What a launcher tells the first host when it joins.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    /// Its position in `--ips`.
    pub node_rank: usize,
    /// Its IP.
    pub host: String,
    /// Its clock, ms since the Unix epoch, when it sent this.
    pub time_ms: u64,
    /// Its view of the job, compared with the first host's.
    pub fingerprint: Fingerprint,
    /// Problems found before start (taken ports), each one line.
    pub preflight: Vec<String>,
}

/// A control-channel message.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "msg")]
pub enum Msg {
    /// Launcher → first host: I am here; this is my job.
    Hello(Hello),
    /// First host → launchers: everyone is here and agrees; start the workers.
    Go {
        /// The job token for the workers.
        token: String,
    },
    /// First host → launchers: the job cannot start, for this reason.
    Reject {
        /// Why, for the console.
        message: String,
    },
    /// Launcher → first host: something failed here.
    Failed {
        /// What failed.
        failure: Failure,
    },
    /// Launcher → first host: all my workers exited 0.
    Done,
    /// First host → launchers: stop your workers; this is the failure so far.
    Abort {
        /// The earliest failure the first host knows of.
        root_cause: Failure,
    },
    /// Launcher → first host: my workers are stopped.
    Stopped,
    /// First host → launchers: the job is over; the root cause, or none if it succeeded.
    Final {
        /// The earliest failure of all hosts, or None.
        root_cause: Option<Failure>,
    },
    /// Heartbeat.
    Ping,
}

/// The sending half of a connection, shared by the main loop and the heartbeat thread.
#[derive(Clone)]
pub struct Sender(Arc<Mutex<TcpStream>>);

impl Sender {
    /// Wraps a connected stream; every write waits at most 5 s.
    pub fn new(stream: &TcpStream) -> std::io::Result<Sender> {
        let stream = stream.try_clone()?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        stream.set_nodelay(true)?;
        Ok(Sender(Arc::new(Mutex::new(stream))))
    }

    /// Sends one message as one line.
    pub fn send(&self, msg: &Msg) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut stream = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        stream.write_all(&line)
    }
}

/// The receiving half: whole lines, kept across read timeouts.
pub struct Receiver {
    reader: BufReader<TcpStream>,
    partial: Vec<u8>,
}

impl Receiver {
    /// Wraps a connected stream.
    pub fn new(stream: TcpStream) -> Receiver {
        Receiver {
            reader: BufReader::new(stream),
            partial: Vec::new(),
        }
    }

    /// The next message before `deadline`; `Ok(None)` on a clean end of stream.
    /// `keep_waiting` is asked every 200 ms and may cut the wait short (returns `TimedOut`).
    pub fn recv(
        &mut self,
        deadline: Instant,
        keep_waiting: &dyn Fn() -> bool,
    ) -> std::io::Result<Option<Msg>> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !keep_waiting() {
                return Err(std::io::Error::new(
                    ErrorKind::TimedOut,
                    "no message before the deadline",
                ));
            }
            self.reader
                .get_ref()
                .set_read_timeout(Some(left.min(Duration::from_millis(200))))?;
            match self.reader.read_until(b'\n', &mut self.partial) {
                Ok(0) => return Ok(None),
                Ok(_) if self.partial.ends_with(b"\n") => {
                    let line = std::mem::take(&mut self.partial);
                    return serde_json::from_slice(&line).map(Some).map_err(|err| {
                        std::io::Error::new(
                            ErrorKind::InvalidData,
                            format!("bad control message: {err}"),
                        )
                    });
                }
                Ok(_) => return Ok(None), // end of stream inside a line
                Err(err)
                    if matches!(
                        err.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    if self.partial.len() > MAX_LINE {
                        return Err(std::io::Error::new(
                            ErrorKind::InvalidData,
                            "control message too long",
                        ));
                    }
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Messages other than `Ping`, each handed to `deliver`, until the peer closes, fails or is
    /// silent for `SILENCE_LIMIT`; returns why it ended.
    pub fn pump(mut self, deliver: &dyn Fn(Msg) -> bool) -> String {
        loop {
            match self.recv(Instant::now() + SILENCE_LIMIT, &|| true) {
                Ok(Some(Msg::Ping)) => {}
                Ok(Some(msg)) => {
                    if !deliver(msg) {
                        return "the launcher is shutting down".into();
                    }
                }
                Ok(None) => return "connection closed (launcher killed or exited)".into(),
                Err(err) if err.kind() == ErrorKind::TimedOut => {
                    return format!(
                        "no heartbeat for {} s (host down or network cut?)",
                        SILENCE_LIMIT.as_secs()
                    );
                }
                Err(err) => return format!("connection failed: {err}"),
            }
        }
    }
}

/// Sends `Ping` on every connection each `HEARTBEAT`, for the life of the process.
pub fn start_heartbeat(senders: Vec<Sender>) {
    let spawned = std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || {
            loop {
                std::thread::sleep(HEARTBEAT);
                for sender in &senders {
                    let _ = sender.send(&Msg::Ping);
                }
            }
        });
    if let Err(err) = spawned {
        tracing::error!("cannot start the heartbeat thread: {err}");
    }
}
