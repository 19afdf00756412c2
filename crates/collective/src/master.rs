//! Rendezvous through one master endpoint: every rank listens on an OS-chosen port of its own IP,
//! tells rank 0 (which listens on the master endpoint) where, and receives the full table.

use crate::comm::Communicator;
use crate::config::Config;
use crate::error::{CommError, Result};
use crate::rendezvous::{self, Identity, Want};
use crate::transport::tcp;
use crate::wire::handshake::Purpose;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Instant;

const MAX_ADDR: usize = 64;

fn put_addr(out: &mut Vec<u8>, a: &SocketAddr) {
    let s = a.to_string();
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

fn get_addr(s: &mut TcpStream, from: &str) -> Result<SocketAddr> {
    let mut l = [0u8; 1];
    let bad = |d: String| CommError::Rendezvous(format!("{from}: {d}"));
    s.read_exact(&mut l).map_err(|e| bad(e.to_string()))?;
    let len = l[0] as usize;
    if len > MAX_ADDR {
        return Err(bad(format!("address of {len} bytes")));
    }
    let mut b = vec![0u8; len];
    s.read_exact(&mut b).map_err(|e| bad(e.to_string()))?;
    String::from_utf8_lossy(&b)
        .parse()
        .map_err(|e| bad(format!("bad address: {e}")))
}

impl Communicator {
    /// Joins a job knowing only the master endpoint (rank 0 listens there), the world size and
    /// our rank. Other ranks listen on `bind_ip` with a port the OS picks.
    pub fn connect_via_master(
        master: SocketAddr,
        bind_ip: IpAddr,
        world_size: usize,
        rank: usize,
        token: &[u8],
        config: Config,
    ) -> Result<Communicator> {
        if world_size == 0 || rank >= world_size {
            return Err(CommError::Invalid(format!(
                "rank {rank} is outside a world of {world_size}"
            )));
        }
        let deadline = Instant::now() + config.handshake_timeout;
        let me = Identity {
            rank,
            world_size,
            token,
            settings: config.fingerprint(),
        };
        let own = if rank == 0 {
            master
        } else {
            SocketAddr::new(bind_ip, 0)
        };
        let listener = tcp::listen(own).map_err(|e| {
            CommError::Rendezvous(format!("rank {rank} cannot listen on {own}: {e}"))
        })?;
        let endpoints = if rank == 0 {
            let wanted: Vec<Want> = (1..world_size)
                .map(|r| Want::new(r, Purpose::Rendezvous, 0))
                .collect();
            let stop = std::sync::atomic::AtomicBool::new(false);
            let mut conns = rendezvous::accept_all(&me, &listener, &wanted, deadline, &stop)?;
            let mut table = vec![master];
            for r in 1..world_size {
                let s = conns
                    .get_mut(&Want::new(r, Purpose::Rendezvous, 0))
                    .ok_or_else(|| CommError::Rendezvous(format!("rank {r} missing")))?;
                s.set_read_timeout(Some(config.handshake_timeout)).ok();
                table.push(get_addr(s, &format!("rank {r}"))?);
            }
            let mut msg = Vec::new();
            table.iter().for_each(|a| put_addr(&mut msg, a));
            for (w, s) in conns.iter_mut() {
                s.write_all(&msg).map_err(|e| {
                    CommError::Rendezvous(format!("sending the table to rank {}: {e}", w.rank))
                })?;
            }
            table
        } else {
            let mut s =
                rendezvous::dial(&me, Want::new(0, Purpose::Rendezvous, 0), master, deadline)?;
            let mine = listener
                .local_addr()
                .map_err(|e| CommError::Local(e.to_string()))?;
            let mut msg = Vec::new();
            put_addr(&mut msg, &mine);
            s.write_all(&msg)
                .map_err(|e| CommError::Rendezvous(format!("master {master}: {e}")))?;
            s.set_read_timeout(Some(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(std::time::Duration::from_millis(1)),
            ))
            .ok();
            (0..world_size)
                .map(|_| get_addr(&mut s, &format!("master {master}")))
                .collect::<Result<Vec<_>>>()?
        };
        let rest = Config {
            handshake_timeout: deadline.saturating_duration_since(Instant::now()),
            ..config
        };
        Communicator::from_listener(listener, rank, &endpoints, token, rest)
    }
}
