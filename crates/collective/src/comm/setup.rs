//! Joining a job: rendezvous over the endpoint list or a listener, the ring, partner and host
//! links, and the start-up check of the host paths.

use super::{AbortHandle, Communicator};
use crate::config::Config;
use crate::error::{CommError, Result};
use crate::rendezvous::{self, Identity, Want};
use crate::transport::link::{Link, Stream};
use crate::transport::tcp;
use crate::wire::handshake::Purpose;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Refuses settings no job can run with before any socket is opened, naming the field.
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
            settings: config.fingerprint(),
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
                    config.hier_direct_bytes.clamp(4 << 10, 1 << 20),
                )?;
                if h.host_size() > 1 {
                    let deadline = Instant::now() + config.handshake_timeout;
                    h.direct_reads = h.probe_direct_reads(deadline)?;
                    // Every rank of the host has created its files by now (the check went
                    // through all of them); map them before any rank can finish and remove its.
                    h.open_host_files()?;
                    h.mapped_barrier(deadline)?;
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
}
