//! Finding and authenticating the peers: every rank listens on its own endpoint, connects to the
//! ranks it needs and accepts the ranks that need it, all before a deadline. Connects retry with
//! backoff; a stranger, a wrong token or a wrong world size is refused with a logged reason while
//! the accept loop goes on; at the deadline the error names the ranks that never showed up.

use crate::error::{CommError, Result};
use crate::transport::tcp;
use crate::wire::frame::VERSION;
use crate::wire::handshake::{self, HandshakeError, Hello, Purpose};
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Longest time one handshake may take, so a silent stranger cannot stall the accept loop.
const HANDSHAKE_STEP: Duration = Duration::from_secs(3);

/// One connection a rank wants: to or from `rank`, for `purpose`, stream `stream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Want {
    /// The other rank.
    pub rank: usize,
    /// What for.
    pub purpose: u8,
    /// Stream index.
    pub stream: u8,
}

impl Want {
    /// A connection of `purpose` with `rank`, stream `stream`.
    pub fn new(rank: usize, purpose: Purpose, stream: usize) -> Want {
        Want {
            rank,
            purpose: purpose as u8,
            stream: stream as u8,
        }
    }
}

/// Who this rank is, for the handshakes.
pub struct Identity<'a> {
    /// Our rank.
    pub rank: usize,
    /// Ranks in the job.
    pub world_size: usize,
    /// Job token.
    pub token: &'a [u8],
    /// [`Config::fingerprint`](crate::Config::fingerprint) of this rank's settings.
    pub settings: u64,
}

fn timeouts(s: &TcpStream, deadline: Instant) -> std::io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    let t = left.clamp(Duration::from_millis(1), HANDSHAKE_STEP);
    s.set_read_timeout(Some(t))?;
    s.set_write_timeout(Some(t))
}

/// Connects to `addr` as `want` and runs the connector handshake, retrying on connection
/// failures until `deadline`.
pub fn dial(
    me: &Identity<'_>,
    want: Want,
    addr: SocketAddr,
    deadline: Instant,
) -> Result<TcpStream> {
    let purpose = match want.purpose {
        2 => Purpose::Rendezvous,
        3 => Purpose::Local,
        4 => Purpose::Leaders,
        5 => Purpose::Pair,
        _ => Purpose::Ring,
    };
    loop {
        let mut s = tcp::connect_retry(addr, deadline).map_err(|e| {
            CommError::Rendezvous(format!("rank {} ({addr}) never showed up: {e}", want.rank))
        })?;
        let hello = Hello {
            version: VERSION as u16,
            purpose,
            stream: want.stream,
            world_size: me.world_size as u32,
            from_rank: me.rank as u32,
            to_rank: want.rank as u32,
            nonce: handshake::nonce().map_err(|e| CommError::Local(e.to_string()))?,
            settings: me.settings,
        };
        let attempt = timeouts(&s, deadline)
            .map_err(|e| HandshakeError::Io(e.to_string()))
            .and_then(|_| handshake::connect(&mut s, me.token, &hello));
        match attempt {
            Ok(()) => {
                s.set_read_timeout(None).ok();
                s.set_write_timeout(None).ok();
                return Ok(s);
            }
            Err(HandshakeError::Io(e)) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                return Err(CommError::Rendezvous(format!(
                    "rank {} ({addr}) did not accept rank {}: {e}",
                    want.rank, me.rank
                )));
            }
        }
    }
}

/// Accepts connections on `listener` until every connection in `wanted` has arrived and passed
/// the handshake, or `deadline` passes. Refused strangers are logged to stderr and ignored.
pub fn accept_all(
    me: &Identity<'_>,
    listener: &TcpListener,
    wanted: &[Want],
    deadline: Instant,
    stop: &AtomicBool,
) -> Result<BTreeMap<Want, TcpStream>> {
    let mut got: BTreeMap<Want, TcpStream> = BTreeMap::new();
    listener
        .set_nonblocking(true)
        .map_err(|e| CommError::Local(format!("listener: {e}")))?;
    let here = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    while got.len() < wanted.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if stop.load(Ordering::Relaxed) {
            return Err(CommError::Rendezvous("stopped".into()));
        }
        if left.is_zero() {
            let missing: Vec<String> = wanted
                .iter()
                .filter(|w| !got.contains_key(w))
                .map(|w| format!("rank {} (stream {})", w.rank, w.stream))
                .collect();
            return Err(CommError::Rendezvous(format!(
                "rank {} ({here}): never heard from {}",
                me.rank,
                missing.join(", ")
            )));
        }
        let mut pfd = [libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        crate::transport::poll::wait(&mut pfd, left.min(Duration::from_millis(100)))
            .map_err(|e| CommError::Local(format!("poll: {e}")))?;
        let (mut s, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(CommError::Local(format!("accept on {here}: {e}"))),
        };
        let setup = s
            .set_nonblocking(false)
            .and_then(|_| timeouts(&s, deadline));
        if let Err(e) = setup {
            tracing::warn!(
                rank = me.rank,
                %peer,
                error = %e,
                "dropped incoming connection: could not set its socket options"
            );
            continue;
        }
        let check = |h: &Hello| -> std::result::Result<(), String> {
            if h.world_size as usize != me.world_size {
                return Err(format!(
                    "world size {} (this job has {})",
                    h.world_size, me.world_size
                ));
            }
            if h.settings != me.settings {
                return Err(format!(
                    "rank {} has other settings than this rank {} (segment size, streams, \
                     small-message size, ring lag, halving-doubling or host-path settings: \
                     every rank must set the same RINGDET_* tunables)",
                    h.from_rank, me.rank
                ));
            }
            if h.to_rank as usize != me.rank {
                return Err(format!(
                    "addressed to rank {} but this is rank {}",
                    h.to_rank, me.rank
                ));
            }
            let w = Want {
                rank: h.from_rank as usize,
                purpose: h.purpose as u8,
                stream: h.stream,
            };
            if !wanted.contains(&w) {
                return Err(format!(
                    "rank {} (stream {}) is not expected here",
                    h.from_rank, h.stream
                ));
            }
            if got.contains_key(&w) {
                return Err(format!(
                    "rank {} (stream {}) is already connected",
                    h.from_rank, h.stream
                ));
            }
            Ok(())
        };
        match handshake::accept(&mut s, me.token, check) {
            Ok(h) => {
                let w = Want {
                    rank: h.from_rank as usize,
                    purpose: h.purpose as u8,
                    stream: h.stream,
                };
                s.set_read_timeout(None).ok();
                s.set_write_timeout(None).ok();
                tcp::tune(&s).ok();
                got.insert(w, s);
            }
            Err(e) => tracing::warn!(
                rank = me.rank,
                %peer,
                error = %e,
                "refused incoming connection: handshake failed"
            ),
        }
    }
    Ok(got)
}

/// Dials every connection in `dial_to` (with its address) while accepting every connection in
/// `accept_from`, in parallel so that no pair of ranks waits on each other.
pub fn establish(
    me: &Identity<'_>,
    listener: &TcpListener,
    dial_to: &[(Want, SocketAddr)],
    accept_from: &[Want],
    deadline: Instant,
) -> Result<(Vec<TcpStream>, BTreeMap<Want, TcpStream>)> {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let acceptor = scope.spawn(|| accept_all(me, listener, accept_from, deadline, &stop));
        let mut dialed = Vec::with_capacity(dial_to.len());
        let mut dial_err = None;
        for &(want, addr) in dial_to {
            match dial(me, want, addr, deadline) {
                Ok(s) => dialed.push(s),
                Err(e) => {
                    dial_err = Some(e);
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
            }
        }
        let accepted = acceptor
            .join()
            .unwrap_or_else(|_| Err(CommError::Local("accept thread panicked".into())));
        match (dial_err, accepted) {
            (None, Ok(a)) => Ok((dialed, a)),
            (Some(e), _) | (None, Err(e)) => Err(e),
        }
    })
}
