//! Every collective over real TCP on loopback, world sizes 1 to 5, against a naive computation.

mod common;

use common::{config, run_ranks};
use ringdet_collective::{Config, Element, ReduceOp, bf16, f16};

const LENGTHS: [usize; 6] = [0, 1, 7, 13, 1001, 70_001];

fn value(rank: usize, i: usize) -> i64 {
    ((rank * 7919 + i * 104_729) % 61) as i64 - 30
}

fn check_all_reduce<T: Element>(conv: fn(i64) -> T, cfg: Config, lens: &[usize], n: usize) {
    // Wrapping u8 only commutes with sums.
    let ops: &[ReduceOp] = if T::DTYPE == ringdet_collective::DType::U8 {
        &[ReduceOp::Sum]
    } else {
        &[ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min]
    };
    for &len in lens {
        for &op in ops {
            let out = run_ranks(n, cfg.clone(), |r, c| {
                let mut v: Vec<T> = (0..len).map(|i| conv(value(r, i))).collect();
                c.all_reduce(&mut v, op)?;
                Ok(v)
            });
            let want: Vec<T> = (0..len)
                .map(|i| {
                    let vals = (0..n).map(|r| value(r, i));
                    conv(match op {
                        ReduceOp::Sum | ReduceOp::Avg => vals.sum(),
                        ReduceOp::Max => vals.max().unwrap_or(0),
                        ReduceOp::Min => vals.min().unwrap_or(0),
                    })
                })
                .collect();
            for (r, got) in out.into_iter().enumerate() {
                let got = got.unwrap_or_else(|e| panic!("n={n} len={len} rank {r}: {e}"));
                assert!(
                    got == want,
                    "{:?} n={n} len={len} op={op:?} rank={r}",
                    T::DTYPE
                );
            }
        }
    }
}

#[test]
fn all_reduce_f32_world_sizes_1_to_5() {
    for n in 1..=5 {
        check_all_reduce::<f32>(|x| x as f32, config(), &LENGTHS, n);
    }
}

#[test]
fn all_reduce_ring_path_with_small_segments_and_streams() {
    let cfg = Config {
        small_bytes: 0,
        segment_bytes: 64,
        streams: 3,
        ..config()
    };
    for n in [2, 3, 5] {
        check_all_reduce::<f32>(|x| x as f32, cfg.clone(), &[1, 2, 5, 333], n);
    }
}

#[test]
fn sender_thread_path_for_every_collective() {
    let cfg = Config {
        sender_thread_bytes: 0,
        small_bytes: 0,
        segment_bytes: 4096,
        streams: 2,
        ..config()
    };
    for n in [2, 3, 4] {
        check_all_reduce::<f32>(|x| x as f32, cfg.clone(), &[1, 7, 100_003], n);
        let out = run_ranks(n, cfg.clone(), |r, c| {
            let mut b: Vec<i64> = if r == 1 {
                (0..50_001).collect()
            } else {
                vec![0; 50_001]
            };
            c.broadcast(&mut b, 1)?;
            let g = c.all_gather(&vec![r as u8; 10_000 * r])?;
            let mut v = vec![r as i32; 9_999];
            let range = c.reduce_scatter(&mut v, ReduceOp::Sum)?;
            c.barrier()?;
            Ok((b, g, v[range].to_vec()))
        });
        let sum = (0..n as i32).sum::<i32>();
        for res in out {
            let (b, g, v) = res.expect("sender thread path");
            assert_eq!(b, (0..50_001).collect::<Vec<i64>>());
            assert_eq!(
                g,
                (0..n)
                    .map(|r| vec![r as u8; 10_000 * r])
                    .collect::<Vec<_>>()
            );
            assert!(v.iter().all(|&x| x == sum));
        }
    }
}

#[test]
fn halving_doubling_for_power_of_two_worlds() {
    let cfg = Config {
        small_bytes: 0,
        segment_bytes: 1024,
        ..config()
    };
    for n in [4, 8] {
        check_all_reduce::<f32>(|x| x as f32, cfg.clone(), &[1, 3, 1001, 200_003], n);
    }
    // Both algorithms on one communicator: 1001 f32 take the ring, shorter buffers halving-doubling.
    let split = Config {
        halving_doubling_max_bytes: 4000,
        ..cfg.clone()
    };
    check_all_reduce::<f32>(|x| x as f32, split, &[3, 1001, 999], 4);
    let off = Config {
        halving_doubling: false,
        ..cfg
    };
    check_all_reduce::<i64>(|x| x, off, &[1001], 4);
}

#[test]
fn all_reduce_every_dtype() {
    let lens = [0, 3, 1001, 40_000];
    for n in [2, 3] {
        check_all_reduce::<f64>(|x| x as f64, config(), &lens, n);
        check_all_reduce::<i32>(|x| x as i32, config(), &lens, n);
        check_all_reduce::<i64>(|x| x, config(), &lens, n);
        check_all_reduce::<u8>(|x| x as u8, config(), &lens, n);
        check_all_reduce::<bf16>(|x| bf16::from_f32(x as f32), config(), &lens, n);
        check_all_reduce::<f16>(|x| f16::from_f32(x as f32), config(), &lens, n);
    }
}

#[test]
fn avg_divides_by_world_size() {
    let out = run_ranks(4, config(), |r, c| {
        let mut v = vec![r as f64 * 2.0; 100_000];
        c.all_reduce(&mut v, ReduceOp::Avg)?;
        let mut w = vec![r as i32 * 4; 5];
        c.all_reduce(&mut w, ReduceOp::Avg)?;
        Ok((v, w))
    });
    for res in out {
        let (v, w) = res.expect("avg");
        assert!(v.iter().all(|&x| x == 3.0));
        assert_eq!(w, vec![6; 5]);
    }
}

#[test]
fn f32_sums_are_deterministic_and_identical_on_all_ranks() {
    for (len, small) in [(300_001, 64 << 10), (3001, 64 << 10), (3001, 0)] {
        let cfg = Config {
            small_bytes: small,
            segment_bytes: 4096,
            ..config()
        };
        let run = || {
            run_ranks(3, cfg.clone(), |r, c| {
                let mut v: Vec<f32> = (0..len)
                    .map(|i| ((i * 31 + r * 17) as f32).sin() * 1e-3 + 1e3)
                    .collect();
                c.all_reduce(&mut v, ReduceOp::Sum)?;
                Ok(v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>())
            })
        };
        let a: Vec<Vec<u32>> = run().into_iter().map(|r| r.expect("run a")).collect();
        let b: Vec<Vec<u32>> = run().into_iter().map(|r| r.expect("run b")).collect();
        assert!(a.iter().all(|x| *x == a[0]), "ranks agree bit for bit");
        assert_eq!(a, b, "two runs agree bit for bit");
    }
}

#[test]
fn broadcast_from_every_root() {
    for n in 1..=5 {
        for root in 0..n {
            for len in [0, 1, 5, 100_003] {
                let out = run_ranks(n, config(), |r, c| {
                    let mut v: Vec<i64> = if r == root {
                        (0..len as i64).collect()
                    } else {
                        vec![-1; len]
                    };
                    c.broadcast(&mut v, root)?;
                    Ok(v)
                });
                let want: Vec<i64> = (0..len as i64).collect();
                out.into_iter()
                    .for_each(|v| assert_eq!(v.expect("broadcast"), want));
            }
        }
    }
}

#[test]
fn all_gather_with_a_different_length_per_rank() {
    for n in 1..=5 {
        let len = |r: usize| (r * 37_003) % 5 + r * 1000;
        let out = run_ranks(n, config(), |r, c| {
            let mine: Vec<u8> = (0..len(r)).map(|i| (i + r) as u8).collect();
            c.all_gather(&mine)
        });
        let want: Vec<Vec<u8>> = (0..n)
            .map(|r| (0..len(r)).map(|i| (i + r) as u8).collect())
            .collect();
        out.into_iter()
            .for_each(|v| assert_eq!(v.expect("all_gather"), want, "n={n}"));
    }
}

#[test]
fn reduce_scatter_gives_each_rank_its_reduced_chunk() {
    for n in 1..=5 {
        for len in [0, 1, 7, 10_007] {
            let out = run_ranks(n, config(), |r, c| {
                let mut v: Vec<i32> = (0..len).map(|i| value(r, i) as i32).collect();
                let range = c.reduce_scatter(&mut v, ReduceOp::Sum)?;
                Ok((range.clone(), v[range].to_vec()))
            });
            let mut covered = 0;
            for res in out {
                let (range, got) = res.expect("reduce_scatter");
                let want: Vec<i32> = range
                    .clone()
                    .map(|i| (0..n).map(|r| value(r, i) as i32).sum())
                    .collect();
                assert_eq!(got, want, "n={n} len={len}");
                covered += range.len();
            }
            assert_eq!(covered, len);
        }
    }
}

#[test]
fn barrier_and_mixed_sequence() {
    let out = run_ranks(4, config(), |r, c| {
        for round in 0..20 {
            c.barrier()?;
            let mut v = vec![(r + round) as f32; 3];
            c.all_reduce(&mut v, ReduceOp::Max)?;
            assert_eq!(v, vec![(3 + round) as f32; 3]);
        }
        Ok(())
    });
    out.into_iter().for_each(|r| r.expect("sequence"));
}
