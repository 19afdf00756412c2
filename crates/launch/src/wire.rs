//! The control channel's wire format: a fixed-size binary handshake (nonces and proofs, see
//! `control`), then one JSON message per line over TCP, every read and write bounded by a
//! deadline, and a heartbeat so a silent peer is noticed within `SILENCE_LIMIT`.

use std::io::{ErrorKind, Read, Write};
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
/// The longest message accepted from a launcher that proved the job secret.
pub const MAX_LINE: usize = 1 << 20;
/// The longest line accepted while a line's limit is being tested (the handshake before any
/// line is binary and of fixed size; kept for the parser's fuzz target).
pub const MAX_HANDSHAKE_LINE: usize = 1024;

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
    /// Launcher → first host, once both have proved the control key: I am here; this is my job.
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
    /// Launcher → first host, every second while its workers run: their progress samples.
    Progress {
        /// This host's workers that joined the progress board.
        ranks: Vec<super::supervisor::RankStatus>,
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

    /// Sends raw bytes (the handshake's nonces and proofs).
    pub fn send_raw(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut stream = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        stream.write_all(bytes)
    }

    /// Sends one message as one line.
    pub fn send(&self, msg: &Msg) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut stream = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        stream.write_all(&line)
    }
}

/// Splits a byte stream into lines of at most `limit` bytes, holding at most `limit + 1` bytes
/// of an unfinished line: a peer that never sends a newline gets an error, not memory.
#[derive(Debug)]
pub struct LineSplitter {
    pending: Vec<u8>,
    limit: usize,
}

impl LineSplitter {
    /// A splitter for lines of at most `limit` bytes (the newline not counted).
    pub fn new(limit: usize) -> LineSplitter {
        LineSplitter {
            pending: Vec::new(),
            limit,
        }
    }

    /// How many more bytes may be pushed before the next line is taken.
    pub fn room(&self) -> usize {
        (self.limit + 1).saturating_sub(self.pending.len())
    }

    /// Bytes held (an unfinished line, or lines not yet taken).
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    /// Appends at most [`room`](Self::room) bytes of `bytes`; returns how many were taken.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        let taken = bytes.len().min(self.room());
        self.pending.extend_from_slice(&bytes[..taken]);
        taken
    }

    /// The next whole line (without its newline), `Ok(None)` if none is complete yet, or an
    /// error once more than `limit` bytes came without a newline.
    pub fn next_line(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        match self.pending.iter().position(|b| *b == b'\n') {
            Some(end) if end <= self.limit => {
                let mut line: Vec<u8> = self.pending.drain(..=end).collect();
                line.pop();
                Ok(Some(line))
            }
            Some(_) => Err(too_long()),
            None if self.pending.len() > self.limit => Err(too_long()),
            None => Ok(None),
        }
    }
}

fn too_long() -> std::io::Error {
    std::io::Error::new(ErrorKind::InvalidData, "control message too long")
}

/// Parses one line (without its newline) as a message; any other input is an `InvalidData`
/// error.
pub fn parse_line(line: &[u8]) -> std::io::Result<Msg> {
    serde_json::from_slice(line).map_err(|err| {
        std::io::Error::new(
            ErrorKind::InvalidData,
            format!("bad control message: {err}"),
        )
    })
}

/// The receiving half: whole lines, kept across read timeouts, each at most its limit.
pub struct Receiver {
    stream: TcpStream,
    lines: LineSplitter,
}

impl Receiver {
    /// Wraps a connected stream; messages may be up to `MAX_LINE` bytes.
    pub fn new(stream: TcpStream) -> Receiver {
        Receiver::with_limit(stream, MAX_LINE)
    }

    /// Wraps a connected stream whose messages may be at most `limit` bytes (fewer bytes than
    /// that are ever held for it).
    pub fn with_limit(stream: TcpStream, limit: usize) -> Receiver {
        Receiver {
            stream,
            lines: LineSplitter::new(limit),
        }
    }

    /// Raises (or lowers) the longest message accepted from now on.
    pub fn set_limit(&mut self, limit: usize) {
        self.lines.limit = limit;
    }

    /// The next message before `deadline`; `Ok(None)` on a clean end of stream.
    /// The deadline holds whatever the peer sends (it is checked after every read), and
    /// `keep_waiting` is asked at least every 200 ms and may cut the wait short (returns
    /// `TimedOut`).
    pub fn recv(
        &mut self,
        deadline: Instant,
        keep_waiting: &dyn Fn() -> bool,
    ) -> std::io::Result<Option<Msg>> {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(line) = self.lines.next_line()? {
                return parse_line(&line).map(Some);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !keep_waiting() {
                return Err(std::io::Error::new(
                    ErrorKind::TimedOut,
                    "no message before the deadline",
                ));
            }
            self.stream
                .set_read_timeout(Some(left.min(Duration::from_millis(200))))?;
            let want = self.lines.room().min(chunk.len());
            match self.stream.read(&mut chunk[..want]) {
                Ok(0) => return Ok(None), // end of stream (inside a line or not)
                Ok(n) => {
                    self.lines.push(&chunk[..n]);
                }
                Err(err)
                    if matches!(
                        err.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(err) => return Err(err),
            }
        }
    }

    /// Exactly `buf.len()` raw bytes (the handshake's nonces and proofs) before `deadline`, read
    /// no further than that, with the deadline and `keep_waiting` honoured as in
    /// [`recv`](Self::recv). A peer that closes first gives `UnexpectedEof`.
    pub fn recv_raw(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
        keep_waiting: &dyn Fn() -> bool,
    ) -> std::io::Result<()> {
        // Nothing is buffered before the first line; take what is, should a caller mix them.
        let mut filled = self.lines.pending.len().min(buf.len());
        buf[..filled].copy_from_slice(&self.lines.pending[..filled]);
        self.lines.pending.drain(..filled);
        while filled < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !keep_waiting() {
                return Err(std::io::Error::new(
                    ErrorKind::TimedOut,
                    "no answer before the deadline",
                ));
            }
            self.stream
                .set_read_timeout(Some(left.min(Duration::from_millis(200))))?;
            match self.stream.read(&mut buf[filled..]) {
                Ok(0) => {
                    return Err(std::io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "connection closed",
                    ));
                }
                Ok(n) => filled += n,
                Err(err)
                    if matches!(
                        err.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
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
