//! The engine over in-memory socket pairs (no TCP at all): a ring all-reduce among threads.

use ringdet_collective::engine::{Buffers, Engine, OpCtx};
use ringdet_collective::schedule;
use ringdet_collective::transport::Link;
use ringdet_collective::wire::frame::Kind;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

#[test]
fn ring_all_reduce_over_memory_pipes() {
    for n in 2..=5 {
        for streams in [1, 2] {
            let len = 10_007;
            // pipes[i] joins rank i (sending) to rank i+1 (receiving).
            let mut rights: Vec<Vec<Link>> = (0..n).map(|_| Vec::new()).collect();
            let mut lefts: Vec<Vec<Link>> = (0..n).map(|_| Vec::new()).collect();
            for i in 0..n {
                for _ in 0..streams {
                    let (a, b) = Link::pair(i, (i + 1) % n).expect("socketpair");
                    rights[i].push(a);
                    lefts[(i + 1) % n].push(b);
                }
            }
            let results: Vec<Vec<f32>> = std::thread::scope(|s| {
                let hs: Vec<_> = rights
                    .into_iter()
                    .zip(lefts)
                    .enumerate()
                    .map(|(r, (mut right, mut left))| {
                        s.spawn(move || {
                            let mut data: Vec<f32> =
                                (0..len).map(|i| (i % 13 + r) as f32).collect();
                            let plan = schedule::ring_all_reduce(r, n, len, 4, 1000, true, 2);
                            let aborted = AtomicBool::new(false);
                            let ctx = OpCtx {
                                kind: Kind::AllReduce,
                                op_id: 0,
                                name: "all_reduce #0".into(),
                                timeout: Duration::from_secs(20),
                                spin: Duration::from_micros(20),
                                max_frame: 1000,
                                aborted: &aborted,
                            };
                            let mut staging = vec![vec![0u64; 125]; streams];
                            let reduce = |d: &mut [u8], s: &[u8]| {
                                let d: &mut [f32] = bytemuck::cast_slice_mut(d);
                                let s: &[f32] = bytemuck::cast_slice(s);
                                d.iter_mut().zip(s).for_each(|(a, b)| *a += b);
                            };
                            let mut bufs = Buffers {
                                data: bytemuck::cast_slice_mut(&mut data),
                                scratch: &mut [],
                                staging: &mut staging,
                                reduce: &reduce,
                            };
                            Engine::new(&mut right, &mut left, &plan, &ctx)
                                .run(&mut bufs)
                                .expect("run");
                            data
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().expect("rank")).collect()
            });
            let want: Vec<f32> = (0..len)
                .map(|i| (0..n).map(|r| (i % 13 + r) as f32).sum())
                .collect();
            results
                .iter()
                .for_each(|d| assert_eq!(d, &want, "n={n} streams={streams}"));
        }
    }
}
