//! Finding and authenticating the peers: every rank listens on its own endpoint, connects to the
//! ranks it needs and accepts the ranks that need it, all before a deadline. Connects retry with
//! backoff. Incoming handshakes run side by side (a thread each, at most [`MAX_PENDING`] at
//! once), each bounded as a whole by [`HANDSHAKE_LIMIT`], so idle, slow or trickling strangers
//! cannot delay or deny the start of the job; a stranger, a wrong token or a wrong world size is
//! dropped with a logged reason while the job goes on; at the deadline the error names the ranks
//! that never showed up.

use crate::error::{CommError, Result};
use crate::transport::tcp::{self, DeadlineStream};
use crate::wire::frame::VERSION;
use crate::wire::handshake::{self, HandshakeError, Hello, Purpose};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest time one handshake may take as a whole, from the connection to the last byte, however
/// the peer spaces its bytes: a silent or trickling stranger is dropped after this.
pub const HANDSHAKE_LIMIT: Duration = Duration::from_secs(5);

/// Most incoming handshakes a rank runs at once; further connections wait in the listen backlog
/// until one of them ends (at the latest after [`HANDSHAKE_LIMIT`]).
pub const MAX_PENDING: usize = 64;

/// How often the accept loop looks at finished handshakes while nothing else happens.
const ACCEPT_TICK: Duration = Duration::from_millis(20);

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
        let s = tcp::connect_retry(addr, deadline).map_err(|e| {
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
        let handshake_deadline = (Instant::now() + HANDSHAKE_LIMIT).min(deadline);
        let attempt = handshake::connect(
            &mut DeadlineStream::new(&s, handshake_deadline),
            me.token,
            &hello,
        );
        match attempt {
            Ok(()) => {
                s.set_read_timeout(None).ok();
                s.set_write_timeout(None).ok();
                return Ok(s);
            }
            Err(HandshakeError::Io(e)) if Instant::now() < deadline => {
                // Closed or cut early: the other rank may have been busy or restarting.
                tracing::debug!(rank = me.rank, %addr, error = %e, "handshake failed, retrying");
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

/// Checks the fields of a hello whose sender proved the token, and claims its connection in
/// `claimed` so that a second connection for the same stream is refused.
fn vet(
    me: &Identity<'_>,
    wanted: &[Want],
    claimed: &Mutex<BTreeSet<Want>>,
    h: &Hello,
) -> std::result::Result<Want, String> {
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
    let mut claimed = claimed
        .lock()
        .map_err(|_| "another handshake thread panicked".to_string())?;
    if !claimed.insert(w) {
        return Err(format!(
            "rank {} (stream {}) is already connected",
            h.from_rank, h.stream
        ));
    }
    Ok(w)
}

/// Runs the acceptor handshake on one incoming connection, all of it before `deadline`.
fn accept_one(
    me: &Identity<'_>,
    stream: TcpStream,
    wanted: &[Want],
    claimed: &Mutex<BTreeSet<Want>>,
    deadline: Instant,
) -> std::result::Result<(Want, TcpStream), HandshakeError> {
    stream
        .set_nonblocking(false)
        .map_err(|e| HandshakeError::Io(format!("socket options: {e}")))?;
    let mut claim = None;
    let accepted = handshake::accept(&mut DeadlineStream::new(&stream, deadline), me.token, |h| {
        let w = vet(me, wanted, claimed, h)?;
        claim = Some(w);
        Ok(())
    });
    match (accepted, claim) {
        (Ok(_), Some(w)) => {
            stream.set_read_timeout(None).ok();
            stream.set_write_timeout(None).ok();
            tcp::tune(&stream).ok();
            Ok((w, stream))
        }
        (Ok(_), None) => Err(HandshakeError::Invalid(
            "accepted without a checked hello".into(),
        )),
        (Err(e), claim) => {
            // The acceptance was not delivered: let the peer's retry have the stream.
            if let (Some(w), Ok(mut c)) = (claim, claimed.lock()) {
                c.remove(&w);
            }
            Err(e)
        }
    }
}

/// What a handshake thread reports: its connection's number, the peer, and the outcome.
type Finished = (
    u64,
    SocketAddr,
    std::result::Result<(Want, TcpStream), HandshakeError>,
);

/// Accepts connections on `listener` until every connection in `wanted` has arrived and passed
/// the handshake, or `deadline` passes. Handshakes run side by side, each within
/// [`HANDSHAKE_LIMIT`]; refused or silent peers are logged as `tracing` warnings (with their
/// address, the reason and a running count) and ignored.
pub fn accept_all(
    me: &Identity<'_>,
    listener: &TcpListener,
    wanted: &[Want],
    deadline: Instant,
    stop: &AtomicBool,
) -> Result<BTreeMap<Want, TcpStream>> {
    listener
        .set_nonblocking(true)
        .map_err(|e| CommError::Local(format!("listener: {e}")))?;
    let here = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let claimed = Mutex::new(BTreeSet::new());
    let (finished_tx, finished_rx) = mpsc::channel::<Finished>();
    let mut got: BTreeMap<Want, TcpStream> = BTreeMap::new();
    // Clones of the connections whose handshake runs, to cut them when the loop ends.
    let mut pending: HashMap<u64, TcpStream> = HashMap::new();
    let mut next_id = 0u64;
    let mut dropped = 0usize;
    let outcome = std::thread::scope(|scope| {
        let outcome = loop {
            while let Ok((id, peer, result)) = finished_rx.try_recv() {
                pending.remove(&id);
                match result {
                    Ok((w, s)) => {
                        got.insert(w, s);
                    }
                    Err(e) => {
                        dropped += 1;
                        tracing::warn!(
                            rank = me.rank,
                            %peer,
                            error = %e,
                            dropped,
                            "dropped incoming connection: handshake failed"
                        );
                    }
                }
            }
            if got.len() >= wanted.len() {
                break Ok(());
            }
            if stop.load(Ordering::Relaxed) {
                break Err(CommError::Rendezvous("stopped".into()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let missing: Vec<String> = wanted
                    .iter()
                    .filter(|w| !got.contains_key(w))
                    .map(|w| format!("rank {} (stream {})", w.rank, w.stream))
                    .collect();
                let strays = if dropped > 0 {
                    format!(" ({dropped} other connections were dropped, see the warnings)")
                } else {
                    String::new()
                };
                break Err(CommError::Rendezvous(format!(
                    "rank {} ({here}): never heard from {}{strays}",
                    me.rank,
                    missing.join(", ")
                )));
            }
            let tick = left.min(ACCEPT_TICK);
            if pending.len() >= MAX_PENDING {
                // Full: new connections wait in the backlog until a handshake ends.
                std::thread::sleep(tick);
                continue;
            }
            let mut pfd = [libc::pollfd {
                fd: listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            if let Err(e) = crate::transport::poll::wait(&mut pfd, tick) {
                break Err(CommError::Local(format!("poll: {e}")));
            }
            while pending.len() < MAX_PENDING {
                let (s, peer) = match listener.accept() {
                    Ok(x) => x,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        // Out of descriptors or a connection reset before it was accepted:
                        // the real ranks retry, so keep going.
                        tracing::warn!(rank = me.rank, error = %e, "accept on {here} failed");
                        break;
                    }
                };
                let id = next_id;
                next_id += 1;
                let cut = match s.try_clone() {
                    Ok(c) => c,
                    Err(e) => {
                        dropped += 1;
                        tracing::warn!(rank = me.rank, %peer, error = %e, dropped,
                            "dropped incoming connection: could not clone its socket");
                        continue;
                    }
                };
                let (claimed, finished_tx) = (&claimed, finished_tx.clone());
                let handshake_deadline = (Instant::now() + HANDSHAKE_LIMIT).min(deadline);
                let spawned = std::thread::Builder::new()
                    .name("ringdet-handshake".into())
                    .stack_size(256 << 10)
                    .spawn_scoped(scope, move || {
                        let result = accept_one(me, s, wanted, claimed, handshake_deadline);
                        // The loop may be gone already; then nobody needs the outcome.
                        let _ = finished_tx.send((id, peer, result));
                    });
                match spawned {
                    Ok(_) => {
                        pending.insert(id, cut);
                    }
                    Err(e) => {
                        dropped += 1;
                        tracing::warn!(rank = me.rank, %peer, error = %e, dropped,
                            "dropped incoming connection: could not start its handshake");
                    }
                }
            }
        };
        // Cut the handshakes still running (strangers, or all of them on failure): their reads
        // fail at once, so the scope does not wait for their deadlines.
        if !pending.is_empty() {
            tracing::debug!(
                rank = me.rank,
                cut = pending.len(),
                "cut unfinished incoming handshakes"
            );
        }
        for s in pending.values() {
            let _ = s.shutdown(Shutdown::Both);
        }
        outcome
    });
    outcome?;
    if dropped > 0 {
        tracing::warn!(
            rank = me.rank,
            dropped,
            "start-up went on after dropping {dropped} stray connections on {here}"
        );
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
