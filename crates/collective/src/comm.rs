//! The communicator: a rank's links to its ring neighbours, its settings, and the bookkeeping
//! that turns any link failure into one error shared by this and every later operation, after
//! telling the neighbours so that the whole job stops instead of hanging.

use crate::config::Config;
use crate::engine::{self, Buffers, Engine, OpCtx};
use crate::error::{CommError, Result};
use crate::rendezvous::{self, Identity, Want};
use crate::schedule::Plan;
use crate::transport::link::{Link, Stream};
use crate::transport::{poll, tcp};
use crate::wire::frame::{HEADER_LEN, Header, Kind};
use crate::wire::handshake::Purpose;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One rank's end of a job: collectives are methods on it (see `collectives.rs`).
pub struct Communicator {
    pub(crate) rank: usize,
    pub(crate) world_size: usize,
    pub(crate) endpoints: Vec<SocketAddr>,
    pub(crate) config: Config,
    pub(crate) right: Vec<Link>,
    pub(crate) left: Vec<Link>,
    pub(crate) scratch: Vec<u64>,
    staging: Vec<Vec<u64>>,
    next_op: u64,
    failed: Option<CommError>,
    pub(crate) abort: AbortHandle,
    pub(crate) hier: Option<crate::hier::Hierarchy>,
    /// Halving-doubling partners by bit: (send links, receive links) to/from `rank ^ (1 << bit)`.
    pub(crate) pairs: Vec<(Vec<Link>, Vec<Link>)>,
}

/// Unblocks and fails every operation of a communicator, from any thread.
#[derive(Clone)]
pub struct AbortHandle {
    pub(crate) flag: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<Stream>>>,
}

impl AbortHandle {
    /// Aborts: the running operation and every later one fail with [`CommError::Aborted`], and
    /// the neighbours see the connections close (and so fail too, naming this rank).
    pub fn abort(&self) {
        self.flag.store(true, Ordering::SeqCst);
        if let Ok(streams) = self.streams.lock() {
            streams.iter().for_each(Stream::shutdown);
        }
    }

    /// Whether [`abort`](AbortHandle::abort) was called.
    pub fn is_aborted(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

fn check_setup(
    rank: usize,
    world_size: usize,
    endpoints: &[SocketAddr],
    config: &Config,
) -> Result<()> {
    if world_size == 0 || rank >= world_size {
        return Err(CommError::Invalid(format!(
            "rank {rank} is outside a world of {world_size}"
        )));
    }
    if endpoints.len() != world_size {
        return Err(CommError::Invalid(format!(
            "{} endpoints for a world of {world_size}",
            endpoints.len()
        )));
    }
    if !(1..=64).contains(&config.streams) {
        return Err(CommError::Invalid(format!(
            "streams = {} (allowed: 1 to 64)",
            config.streams
        )));
    }
    if !(64..=(64 << 20)).contains(&config.segment_bytes) {
        return Err(CommError::Invalid(format!(
            "segment_bytes = {} (allowed: 64 B to 64 MiB)",
            config.segment_bytes
        )));
    }
    Ok(())
}

impl Communicator {
    /// Joins a job given every rank's endpoint: binds `endpoints[rank]` (that IP exactly),
    /// connects to the right neighbour, accepts the left one, all within
    /// `config.handshake_timeout`.
    pub fn connect(
        rank: usize,
        endpoints: &[SocketAddr],
        token: &[u8],
        config: Config,
    ) -> Result<Self> {
        let addr = *endpoints
            .get(rank)
            .ok_or_else(|| CommError::Invalid(format!("no endpoint for rank {rank}")))?;
        let listener = tcp::listen(addr).map_err(|e| {
            CommError::Rendezvous(format!("rank {rank} cannot listen on {addr}: {e}"))
        })?;
        Self::from_listener(listener, rank, endpoints, token, config)
    }

    /// Like [`connect`](Communicator::connect) with a listener the caller already bound to
    /// `endpoints[rank]` (useful with OS-assigned ports).
    pub fn from_listener(
        listener: TcpListener,
        rank: usize,
        endpoints: &[SocketAddr],
        token: &[u8],
        config: Config,
    ) -> Result<Self> {
        let n = endpoints.len();
        check_setup(rank, n, endpoints, &config)?;
        let deadline = Instant::now() + config.handshake_timeout;
        let me = Identity {
            rank,
            world_size: n,
            token,
        };
        let (ring_r, ring_l) = ((rank + 1) % n, (rank + n - 1) % n);
        let streams = if n > 1 { config.streams } else { 0 };
        let mut dial: Vec<(Want, SocketAddr)> = (0..streams)
            .map(|s| (Want::new(ring_r, Purpose::Ring, s), endpoints[ring_r]))
            .collect();
        let mut accept: Vec<Want> = (0..streams)
            .map(|s| Want::new(ring_l, Purpose::Ring, s))
            .collect();
        let shared_host = endpoints
            .iter()
            .enumerate()
            .any(|(i, e)| endpoints[..i].iter().any(|f| f.ip() == e.ip()));
        let hier_plan = (config.hierarchical && shared_host)
            .then(|| crate::hier::Wiring::new(rank, endpoints, config.streams));
        if let Some(w) = &hier_plan {
            dial.extend(w.dial.iter().map(|&want| (want, endpoints[want.rank])));
            accept.extend(w.accept.iter().copied());
        }
        let bits = if config.halving_doubling && n >= 4 && n.is_power_of_two() {
            n.trailing_zeros() as usize
        } else {
            0
        };
        for b in 0..bits {
            let partner = rank ^ (1 << b);
            dial.push((Want::new(partner, Purpose::Pair, b), endpoints[partner]));
            accept.push(Want::new(partner, Purpose::Pair, b));
        }
        let (dialed, mut accepted) =
            rendezvous::establish(&me, &listener, &dial, &accept, deadline)?;
        drop(listener);
        let link = |s, peer: usize| {
            Link::new(Stream::Tcp(s), peer, endpoints[peer].to_string())
                .map_err(|e| CommError::Local(format!("socket setup: {e}")))
        };
        let mut dialed = dialed.into_iter().zip(dial.iter().map(|d| d.0));
        let mut right = Vec::new();
        for (s, _) in dialed.by_ref().take(streams) {
            right.push(link(s, ring_r)?);
        }
        let mut left = Vec::new();
        for s in 0..streams {
            let st = accepted
                .remove(&Want::new(ring_l, Purpose::Ring, s))
                .ok_or_else(|| CommError::Local("accepted streams missing".into()))?;
            left.push(link(st, ring_l)?);
        }
        let mut extra = Vec::new();
        for (s, want) in dialed {
            extra.push((want, true, link(s, want.rank)?));
        }
        for (want, s) in accepted {
            extra.push((want, false, link(s, want.rank)?));
        }
        let mut abort_streams = Vec::new();
        for l in right.iter().chain(&left).chain(extra.iter().map(|e| &e.2)) {
            abort_streams.push(
                l.try_clone_stream()
                    .map_err(|e| CommError::Local(format!("socket clone: {e}")))?,
            );
        }
        let mut pairs: Vec<(Vec<Link>, Vec<Link>)> =
            (0..bits).map(|_| (Vec::new(), Vec::new())).collect();
        let mut host_links = Vec::new();
        for (want, dialed, l) in extra {
            match pairs.get_mut(want.stream as usize) {
                Some(p) if want.purpose == Purpose::Pair as u8 => {
                    if dialed {
                        p.0.push(l)
                    } else {
                        p.1.push(l)
                    }
                }
                _ => host_links.push((want, dialed, l)),
            }
        }
        let hier = match hier_plan {
            Some(w) => {
                let mut h = crate::hier::Hierarchy::new(
                    w,
                    host_links,
                    token,
                    endpoints,
                    config.small_bytes,
                )?;
                if h.host_size() > 1 {
                    let deadline = Instant::now() + config.handshake_timeout;
                    h.direct_reads = h.probe_direct_reads(deadline)?;
                }
                Some(h)
            }
            None => None,
        };
        Ok(Communicator {
            rank,
            world_size: n,
            endpoints: endpoints.to_vec(),
            right,
            left,
            scratch: Vec::new(),
            staging: Vec::new(),
            next_op: 0,
            failed: None,
            abort: AbortHandle {
                flag: Arc::new(AtomicBool::new(false)),
                streams: Arc::new(Mutex::new(abort_streams)),
            },
            config,
            hier,
            pairs,
        })
    }

    /// This rank's number.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of ranks in the job.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// Every rank's endpoint, by rank.
    pub fn endpoints(&self) -> &[SocketAddr] {
        &self.endpoints
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How all-reduces of at least `config().hier_direct_bytes` run inside this rank's host:
    /// `"direct reads"` (ranks read each other's buffers), `"shared memory"` (the start-up check
    /// found direct reads refused, so they go through `/dev/shm` and the host leader), or
    /// `"TCP ring"` (hierarchical mode off, or no other rank on this IP).
    pub fn host_path(&self) -> &'static str {
        match &self.hier {
            Some(h) if h.direct_reads => "direct reads",
            Some(_) => "shared memory",
            None => "TCP ring",
        }
    }

    /// A handle that aborts this communicator from another thread.
    pub fn abort_handle(&self) -> AbortHandle {
        self.abort.clone()
    }

    /// Aborts this communicator (see [`AbortHandle::abort`]).
    pub fn abort(&self) {
        self.abort.abort();
    }

    /// The error that broke this communicator, if any.
    pub fn failure(&self) -> Option<&CommError> {
        self.failed.as_ref()
    }

    /// Scratch space of at least `bytes` bytes, 8-byte aligned.
    pub(crate) fn scratch_mut(&mut self, bytes: usize) -> &mut [u8] {
        let words = bytes.div_ceil(8);
        if self.scratch.len() < words {
            self.scratch.resize(words, 0);
        }
        &mut bytemuck::cast_slice_mut::<u64, u8>(&mut self.scratch)[..bytes]
    }

    /// Fails fast if the communicator is already broken or aborted; returns the next op id.
    pub(crate) fn begin(&mut self, kind: Kind) -> Result<u64> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let id = self.next_op;
        if self.abort.is_aborted() {
            return Err(CommError::Aborted {
                op: format!("{} #{id}", kind.name()),
            });
        }
        self.next_op += 1;
        Ok(id)
    }

    /// Runs `plan` on the ring links (Data = `data`, Scratch = the scratch buffer).
    pub(crate) fn run_plan(
        &mut self,
        kind: Kind,
        op_id: u64,
        plan: &Plan,
        data: &mut [u8],
        reduce: &dyn Fn(&mut [u8], &[u8]),
    ) -> Result<()> {
        if plan.sends.is_empty() && plan.recvs.is_empty() {
            return Ok(());
        }
        let seg = self.config.segment_bytes;
        let streams = self.left.len();
        if self.staging.len() != streams {
            self.staging = vec![vec![0u64; seg.div_ceil(8)]; streams];
        }
        let ctx = OpCtx {
            kind,
            op_id,
            name: format!("{} #{op_id}", kind.name()),
            timeout: self.config.data_timeout,
            spin: self.config.spin,
            max_frame: seg as u32,
            aborted: &self.abort.flag,
        };
        let mut bufs = Buffers {
            data,
            scratch: bytemuck::cast_slice_mut::<u64, u8>(&mut self.scratch),
            staging: &mut self.staging,
            reduce,
        };
        let sent: usize = plan.sends.iter().map(|f| f.range.len()).sum();
        if sent >= self.config.sender_thread_bytes && !plan.recvs.is_empty() {
            let (res, partial) =
                crate::duplex::run(&mut self.right, &mut self.left, plan, &ctx, &mut bufs);
            return match res {
                Ok(()) => Ok(()),
                Err(e) => {
                    let mut intact = vec![true; self.right.len()];
                    if let Some((s, owed)) = partial {
                        let filler = vec![0u8; owed];
                        let deadline = Instant::now() + Duration::from_secs(1);
                        intact[s] = poll::write_all(&mut self.right[s], &filler, deadline).is_ok();
                    }
                    Err(self.fail(e, op_id, &intact))
                }
            };
        }
        let mut engine = Engine::new(&mut self.right, &mut self.left, plan, &ctx);
        match engine.run(&mut bufs) {
            Ok(()) => Ok(()),
            Err(e) => {
                let intact = engine.finish_partial_frames(Instant::now() + Duration::from_secs(1));
                Err(self.fail(e, op_id, &intact))
            }
        }
    }

    /// Records `err`, reports it to both neighbours (so it travels around the ring), and closes
    /// every link.
    pub(crate) fn fail(&mut self, err: CommError, op_id: u64, intact: &[bool]) -> CommError {
        if !matches!(err, CommError::Aborted { .. }) {
            let payload = engine::encode_abort(&err);
            let mut frame = Header {
                kind: Kind::Abort,
                op_id,
                seq: 0,
                len: payload.len() as u32,
            }
            .encode()
            .to_vec();
            debug_assert_eq!(frame.len(), HEADER_LEN);
            frame.extend_from_slice(&payload);
            let deadline = Instant::now() + Duration::from_secs(1);
            for (s, link) in self.right.iter_mut().enumerate() {
                if intact.get(s).copied().unwrap_or(true)
                    && link.peer_rank != err.failed_rank().unwrap_or(usize::MAX)
                {
                    let _ = poll::write_all(link, &frame, deadline);
                }
            }
            for link in self.left.iter_mut() {
                if link.peer_rank != err.failed_rank().unwrap_or(usize::MAX) {
                    let _ = poll::write_all(link, &frame, deadline);
                }
            }
            if let Some(h) = &mut self.hier {
                h.report(&frame, err.failed_rank(), deadline);
            }
            for (send, recv) in self.pairs.iter_mut() {
                for link in send.iter_mut().chain(recv.iter_mut()) {
                    if link.peer_rank != err.failed_rank().unwrap_or(usize::MAX) {
                        let _ = poll::write_all(link, &frame, deadline);
                    }
                }
            }
        }
        // Write side only, then wait (bounded) for each peer to close its side: the report must be
        // read before this rank's links can close under it.
        self.right
            .iter()
            .chain(&self.left)
            .for_each(Link::shutdown_write);
        for (send, recv) in &self.pairs {
            send.iter().chain(recv).for_each(Link::shutdown_write);
        }
        let linger = Instant::now() + Duration::from_millis(500);
        for link in self.right.iter_mut().chain(self.left.iter_mut()) {
            poll::drain_until_eof(link, linger);
        }
        for (send, recv) in self.pairs.iter_mut() {
            for link in send.iter_mut().chain(recv.iter_mut()) {
                poll::drain_until_eof(link, linger);
            }
        }
        if let Some(h) = &self.hier {
            h.shutdown();
        }
        self.failed = Some(err.clone());
        err
    }
}
