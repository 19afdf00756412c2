//! All-reduce throughput over loopback TCP: 4 KiB, 1 MiB, 16 MiB and 64 MiB of f32 with 2 and 4
//! ranks (threads of this process, each with its own communicator and sockets). Reported as
//! bytes per second of the buffer (algbw; busbw = algbw * 2(n-1)/n).

use criterion::{BenchmarkId, Criterion, Throughput};
use crossbeam::channel::{Receiver, Sender, unbounded};
use ringdet_collective::{Communicator, Config, ReduceOp};
use std::net::TcpListener;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A helper rank: where to send (floats, iterations) and its thread.
type Helper = (Sender<(usize, u64)>, JoinHandle<()>);

/// Ranks 1..n run on helper threads, told by rank 0 how many all-reduces of how many floats to run.
struct Job {
    comm: Communicator,
    helpers: Vec<Helper>,
    done: Receiver<()>,
}

fn start(n: usize) -> Job {
    let ls: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let eps: Vec<_> = ls.iter().map(|l| l.local_addr().expect("addr")).collect();
    let (done_tx, done) = unbounded();
    let mut ls = ls.into_iter();
    let l0 = ls.next().expect("rank 0");
    let mut helpers = Vec::new();
    for (i, l) in ls.enumerate() {
        let (tx, rx) = unbounded::<(usize, u64)>();
        let (eps, done_tx) = (eps.clone(), done_tx.clone());
        let h = std::thread::spawn(move || {
            let mut c = Communicator::from_listener(l, i + 1, &eps, b"bench", Config::default())
                .expect("join");
            let mut buf = Vec::new();
            for (len, iters) in rx {
                buf.resize(len, 1.0f32);
                for _ in 0..iters {
                    c.all_reduce(&mut buf, ReduceOp::Sum).expect("all_reduce");
                }
                let _ = done_tx.send(());
            }
        });
        helpers.push((tx, h));
    }
    let comm = Communicator::from_listener(l0, 0, &eps, b"bench", Config::default()).expect("join");
    Job {
        comm,
        helpers,
        done,
    }
}

fn allreduce(c: &mut Criterion) {
    let mut group = c.benchmark_group("allreduce_f32");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for n in [2, 4] {
        let mut job = start(n);
        for bytes in [4usize << 10, 1 << 20, 16 << 20, 64 << 20] {
            let len = bytes / 4;
            let mut buf = vec![1.0f32; len];
            group.throughput(Throughput::Bytes(bytes as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("{n}_ranks"), bytes),
                &len,
                |b, &len| {
                    b.iter_custom(|iters| {
                        for (tx, _) in &job.helpers {
                            tx.send((len, iters)).expect("helper");
                        }
                        let start = Instant::now();
                        for _ in 0..iters {
                            job.comm
                                .all_reduce(&mut buf, ReduceOp::Sum)
                                .expect("all_reduce");
                        }
                        let t = start.elapsed();
                        for _ in &job.helpers {
                            job.done.recv().expect("helper done");
                        }
                        t
                    })
                },
            );
        }
        for (tx, h) in job.helpers.drain(..) {
            drop(tx);
            let _ = h.join();
        }
    }
    group.finish();
}

// What `criterion_group!`/`criterion_main!` expand to, without the undocumented `pub fn` the
// group macro defines (the workspace warns on missing docs).
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    allreduce(&mut criterion);
    criterion.final_summary();
}
