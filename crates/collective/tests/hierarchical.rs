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

#[test]
fn f32_sums_on_the_host_paths_are_deterministic_and_identical_on_all_ranks() {
    // Slots (3001 floats, one host), direct reads (300_001 floats, one host and two hosts), and
    // the leader path (two hosts, small buffers).
    let cases: [(&[&str], usize, usize); 4] = [
        (&["127.0.0.1"], 3001, 128 << 10),
        (&["127.0.0.1"], 300_001, 128 << 10),
        (&["127.0.0.1", "127.0.0.2"], 300_001, 0),
        (&["127.0.0.1", "127.0.0.2"], 3001, usize::MAX),
    ];
    for (ips, len, slice_bytes) in cases {
        let run = || {
            run_ranks_on(ips, 4, hier(slice_bytes), |r, c| {
                let mut v: Vec<f32> = (0..len)
                    .map(|i| ((i * 31 + r * 17) as f32).sin() * 1e-3 + 1e3)
                    .collect();
                c.all_reduce(&mut v, ReduceOp::Sum)?;
                Ok(v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>())
            })
        };
        let a: Vec<Vec<u32>> = run().into_iter().map(|r| r.expect("run a")).collect();
        let b: Vec<Vec<u32>> = run().into_iter().map(|r| r.expect("run b")).collect();
        assert!(
            a.iter().all(|x| *x == a[0]),
            "{ips:?} len {len}: ranks agree bit for bit"
        );
        assert_eq!(a, b, "{ips:?} len {len}: two runs agree bit for bit");
    }
}
