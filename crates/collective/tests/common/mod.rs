//! Helpers shared by the integration tests: start `n` ranks as threads over loopback.
#![allow(dead_code)]

use ringdet_collective::{Communicator, Config, Result};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

pub const TOKEN: &[u8] = b"test-job-token";

/// Test settings: short deadlines so a broken test fails fast instead of hanging.
pub fn config() -> Config {
    Config {
        handshake_timeout: Duration::from_secs(20),
        data_timeout: Duration::from_secs(20),
        // These tests are about the TCP ring; tests/hierarchical.rs covers the host paths.
        hierarchical: false,
        ..Config::default()
    }
}

/// Binds `n` listeners on the given IPs (cycled) with OS-chosen ports.
pub fn listeners(ips: &[&str], n: usize) -> (Vec<TcpListener>, Vec<SocketAddr>) {
    let ls: Vec<TcpListener> = (0..n)
        .map(|i| TcpListener::bind((ips[i % ips.len()], 0)).expect("bind loopback"))
        .collect();
    let eps = ls.iter().map(|l| l.local_addr().expect("addr")).collect();
    (ls, eps)
}

/// Runs `f(rank, comm)` on `n` threads, one communicator each; returns the results by rank.
pub fn run_ranks<R: Send>(
    n: usize,
    cfg: Config,
    f: impl Fn(usize, &mut Communicator) -> Result<R> + Sync,
) -> Vec<Result<R>> {
    run_ranks_on(&["127.0.0.1"], n, cfg, f)
}

/// Like `run_ranks` with rank `i` on `ips[i % ips.len()]`.
pub fn run_ranks_on<R: Send>(
    ips: &[&str],
    n: usize,
    cfg: Config,
    f: impl Fn(usize, &mut Communicator) -> Result<R> + Sync,
) -> Vec<Result<R>> {
    let (ls, eps) = listeners(ips, n);
    std::thread::scope(|s| {
        let hs: Vec<_> = ls
            .into_iter()
            .enumerate()
            .map(|(r, l)| {
                let (eps, cfg, f) = (&eps, cfg.clone(), &f);
                s.spawn(move || {
                    let mut c = Communicator::from_listener(l, r, eps, TOKEN, cfg)?;
                    f(r, &mut c)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("rank thread panicked"))
            .collect()
    })
}
