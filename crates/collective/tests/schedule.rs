//! The schedules, checked by a simulator without any I/O: every rank's plan is run with frames
//! delivered in memory, in an arbitrary interleaving, and the result compared with a naive
//! reduction. Also checks that sender and receiver agree on every frame length.

use ringdet_collective::schedule::{self, Action, Buf, Plan};
use std::collections::VecDeque;

struct Rank {
    data: Vec<i64>,
    scratch: Vec<i64>,
    plan: Plan,
    sent: usize,
    recvd: usize,
}

/// Runs the plans; frames are element ranges here (elem = 8 bytes of i64).
fn simulate(ranks: &mut [Rank], seed: u64) {
    let n = ranks.len();
    let mut wires: Vec<VecDeque<(usize, Vec<i64>)>> = vec![VecDeque::new(); n];
    let mut rng = seed;
    let mut stuck = 0;
    loop {
        let done = ranks
            .iter()
            .all(|r| r.sent == r.plan.sends.len() && r.recvd == r.plan.recvs.len());
        if done {
            break;
        }
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let i = (rng >> 33) as usize % n;
        let mut moved = false;
        // Try a send of rank i.
        let r = &mut ranks[i];
        if let Some(f) = r.plan.sends.get(r.sent)
            && f.after.is_none_or(|d| d < r.recvd)
        {
            let src = if f.buf == Buf::Data {
                &r.data
            } else {
                &r.scratch
            };
            let payload = src[f.range.start / 8..f.range.end / 8].to_vec();
            wires[(i + 1) % n].push_back((r.sent, payload));
            r.sent += 1;
            moved = true;
        }
        // Try a receive of rank i.
        if let Some((seq, payload)) = wires[i].pop_front() {
            let r = &mut ranks[i];
            assert_eq!(seq, r.recvd, "frames arrive in order");
            let f = &r.plan.recvs[r.recvd];
            assert_eq!(
                f.range.len() / 8,
                payload.len(),
                "sender and receiver agree on length"
            );
            let dst = if f.buf == Buf::Data {
                &mut r.data
            } else {
                &mut r.scratch
            };
            let d = &mut dst[f.range.start / 8..f.range.end / 8];
            match f.action {
                Action::Copy => d.copy_from_slice(&payload),
                Action::Reduce => d.iter_mut().zip(&payload).for_each(|(a, b)| *a += b),
            }
            r.recvd += 1;
            moved = true;
        }
        stuck = if moved { 0 } else { stuck + 1 };
        assert!(stuck < 10_000, "schedule deadlocked");
    }
}

fn input(rank: usize, len: usize) -> Vec<i64> {
    (0..len).map(|i| (rank * 1000 + i) as i64).collect()
}

#[test]
fn ring_all_reduce_matches_naive_sum() {
    for n in 1..=6 {
        for len in [0, 1, 2, 5, 7, 13, 64, 1001] {
            for (seg, lag) in [(8, 1), (8, 2), (24, 3), (24, usize::MAX), (4096, 2)] {
                let mut ranks: Vec<Rank> = (0..n)
                    .map(|r| Rank {
                        data: input(r, len),
                        scratch: vec![],
                        plan: schedule::ring_all_reduce(r, n, len, 8, seg, true, lag),
                        sent: 0,
                        recvd: 0,
                    })
                    .collect();
                simulate(&mut ranks, (n * 31 + len) as u64);
                let want: Vec<i64> = (0..len)
                    .map(|i| (0..n).map(|r| input(r, len)[i]).sum())
                    .collect();
                for r in &ranks {
                    assert_eq!(r.data, want, "n={n} len={len} seg={seg} lag={lag}");
                }
            }
        }
    }
}

#[test]
fn reduce_scatter_leaves_each_rank_its_chunk() {
    for n in 2..=5 {
        for len in [1, 3, 10, 99] {
            let mut ranks: Vec<Rank> = (0..n)
                .map(|r| Rank {
                    data: input(r, len),
                    scratch: vec![],
                    plan: schedule::ring_all_reduce(r, n, len, 8, 16, false, 1),
                    sent: 0,
                    recvd: 0,
                })
                .collect();
            simulate(&mut ranks, 7);
            for (r, rank) in ranks.iter().enumerate() {
                for i in schedule::chunks(len, n)[r].clone() {
                    let want: i64 = (0..n).map(|q| input(q, len)[i]).sum();
                    assert_eq!(rank.data[i], want, "n={n} len={len} rank={r} i={i}");
                }
            }
        }
    }
}

#[test]
fn broadcast_and_variable_all_gather() {
    for n in 1..=5 {
        for root in 0..n {
            let len = 37;
            let mut ranks: Vec<Rank> = (0..n)
                .map(|r| Rank {
                    data: if r == root {
                        input(r, len)
                    } else {
                        vec![0; len]
                    },
                    scratch: vec![],
                    plan: schedule::ring_broadcast(r, n, root, len * 8, 40, 8),
                    sent: 0,
                    recvd: 0,
                })
                .collect();
            simulate(&mut ranks, root as u64);
            ranks
                .iter()
                .for_each(|r| assert_eq!(r.data, input(root, len)));
        }
        let lens: Vec<usize> = (0..n).map(|r| (r * 7) % 5).collect();
        let mut blocks = Vec::new();
        let mut start = 0;
        for &l in &lens {
            blocks.push(start * 8..(start + l) * 8);
            start += l;
        }
        let want: Vec<i64> = (0..n).flat_map(|r| input(r, lens[r])).collect();
        let mut ranks: Vec<Rank> = (0..n)
            .map(|r| {
                let mut data = vec![0; start];
                data[blocks[r].start / 8..blocks[r].end / 8].copy_from_slice(&input(r, lens[r]));
                Rank {
                    data,
                    scratch: vec![],
                    plan: schedule::ring_all_gather(r, n, &blocks, Buf::Data, 16, 8, 2),
                    sent: 0,
                    recvd: 0,
                }
            })
            .collect();
        simulate(&mut ranks, 3);
        ranks.iter().for_each(|r| assert_eq!(r.data, want, "n={n}"));
    }
}

#[test]
fn chunks_cover_the_buffer() {
    for n in 1..=7 {
        for len in 0..40 {
            let c = schedule::chunks(len, n);
            assert_eq!(c.len(), n);
            assert_eq!(c[0].start, 0);
            assert_eq!(c[n - 1].end, len);
            assert!(c.windows(2).all(|w| w[0].end == w[1].start));
            assert!(
                c.iter()
                    .all(|r| r.len() == len / n || r.len() == len / n + 1)
            );
        }
    }
}

#[test]
// Steps index every rank's plan list at once.
#[allow(clippy::needless_range_loop)]
fn halving_doubling_matches_naive_sum() {
    for n in [2, 4, 8] {
        for len in [1, 2, 3, 7, 64, 1001] {
            let plans: Vec<Vec<(usize, Plan)>> = (0..n)
                .map(|r| schedule::halving_doubling(r, n, len, 8, 24))
                .collect();
            let mut data: Vec<Vec<i64>> = (0..n).map(|r| input(r, len)).collect();
            let steps = plans[0].len();
            for step in 0..steps {
                // Every pair exchanges at once: compute all payloads before applying any.
                let mut inbox: Vec<Vec<(Plan, Vec<Vec<i64>>)>> = vec![Vec::new(); n];
                for r in 0..n {
                    let (bit, plan) = &plans[r][step];
                    let partner = r ^ (1 << bit);
                    let payloads = plan
                        .sends
                        .iter()
                        .map(|f| data[r][f.range.start / 8..f.range.end / 8].to_vec())
                        .collect();
                    inbox[partner].push((plans[partner][step].1.clone(), payloads));
                }
                for (r, msgs) in inbox.into_iter().enumerate() {
                    for (plan, payloads) in msgs {
                        assert_eq!(plan.recvs.len(), payloads.len(), "n={n} len={len}");
                        for (f, p) in plan.recvs.iter().zip(payloads) {
                            let d = &mut data[r][f.range.start / 8..f.range.end / 8];
                            assert_eq!(d.len(), p.len());
                            match f.action {
                                Action::Copy => d.copy_from_slice(&p),
                                Action::Reduce => d.iter_mut().zip(&p).for_each(|(a, b)| *a += b),
                            }
                        }
                    }
                }
            }
            let want: Vec<i64> = (0..len)
                .map(|i| (0..n).map(|r| input(r, len)[i]).sum())
                .collect();
            for d in &data {
                assert_eq!(d, &want, "n={n} len={len}");
            }
        }
    }
}
