//! Hierarchical mode: ranks on "hosts" 127.0.0.1 and 127.0.0.2 reduce through shared memory,
//! host leaders run the ring. Even and uneven numbers of ranks per host.

mod common;

use common::{config, run_ranks_on};
use ringdet_collective::{Config, ReduceOp};

/// Hierarchical mode where buffers of at least `slice_bytes` are reduced by every rank of a host.
fn hier(slice_bytes: usize) -> Config {
    Config {
        hierarchical: true,
        segment_bytes: 4096,
        hier_direct_bytes: slice_bytes,
        ..config()
    }
}

fn check(ips: &[&str], n: usize) {
    // Leader-only reduction, per-rank slices for all but the smallest buffers, then for all.
    for slice_bytes in [usize::MAX, 64, 0] {
        check_with(ips, n, slice_bytes);
    }
}

fn check_with(ips: &[&str], n: usize, slice_bytes: usize) {
    for len in [0, 1, 7, 5000, 100_003] {
        let out = run_ranks_on(ips, n, hier(slice_bytes), |r, c| {
            let mut v: Vec<f64> = (0..len).map(|i| (r * 10 + i % 7) as f64).collect();
            c.all_reduce(&mut v, ReduceOp::Sum)?;
            let mut w: Vec<i32> = (0..len).map(|i| (r + i) as i32).collect();
            c.all_reduce(&mut w, ReduceOp::Max)?;
            // Other collectives keep using the full ring.
            let g = c.all_gather(&[r as u8])?;
            c.barrier()?;
            Ok((v, w, g))
        });
        let want: Vec<f64> = (0..len)
            .map(|i| (0..n).map(|r| (r * 10 + i % 7) as f64).sum())
            .collect();
        let want_max: Vec<i32> = (0..len).map(|i| (n - 1 + i) as i32).collect();
        let want_g: Vec<Vec<u8>> = (0..n).map(|r| vec![r as u8]).collect();
        for (r, res) in out.into_iter().enumerate() {
            let (v, w, g) = res.unwrap_or_else(|e| panic!("rank {r}: {e}"));
            assert_eq!(
                v, want,
                "ips={ips:?} n={n} len={len} slice_bytes={slice_bytes} rank {r}"
            );
            assert_eq!(w, want_max);
            assert_eq!(g, want_g);
        }
    }
}

#[test]
fn two_hosts_two_ranks_each() {
    check(&["127.0.0.1", "127.0.0.2"], 4);
}

#[test]
fn uneven_hosts_and_a_single_host() {
    // Ranks 0, 2, 4 on the first host and 1, 3 on the second.
    check(&["127.0.0.1", "127.0.0.2"], 5);
    check(&["127.0.0.1"], 3);
    check(&["127.0.0.1", "127.0.0.2", "127.0.0.3"], 3);
}
