//! Test helper, not a tool: one rank of a job for `tests/failure.rs` and `tests/progress.rs`
//! (and the launcher's stall tests), which start several of these processes and kill or watch
//! one. It joins the job described by the `RINGDET_*` variables (as `ringdet launch` sets them),
//! all-reduces a buffer of `<len>` f32 elements (the first argument) until something fails or 60
//! s pass, and reports on stdout: `READY` after the third all-reduce, then one `RESULT <error>`
//! line (`RESULT finished without error` if none failed).
//!
//! `<len> spin <rank> <after>`: rank `<rank>` stops after `<after>` all-reduces and spins
//! forever in a busy loop (state R, no collective: a hung-but-running rank), printing
//! `SPINNING` first; the other ranks go on and wait for it in the next all-reduce.
//! `<len> block <rank> <after>`: the same, but the rank blocks forever on a lock that is never
//! released (state S: a deadlock), printing `BLOCKED` first.

use ringdet_collective::{Communicator, ReduceOp};
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long the worker keeps all-reducing when nothing fails.
const RUN_FOR: Duration = Duration::from_secs(60);

/// How a chosen rank hangs.
#[derive(Clone, Copy)]
enum Hang {
    /// A busy loop (state R).
    Spin,
    /// Waiting on a lock that is never released (state S).
    Block,
}

/// Parses `spin|block <rank> <after>`.
fn spin_point(args: &[String]) -> Result<Option<(Hang, usize, u64)>, String> {
    match args {
        [] => Ok(None),
        [mode, rank, after] if mode == "spin" || mode == "block" => {
            let hang = if mode == "spin" {
                Hang::Spin
            } else {
                Hang::Block
            };
            let rank = rank.parse().map_err(|_| format!("{mode} rank {rank:?}"))?;
            let after = after
                .parse()
                .map_err(|_| format!("{mode} after {after:?}"))?;
            Ok(Some((hang, rank, after)))
        }
        other => Err(format!("unknown mode {other:?}")),
    }
}

/// Never returns: spins or blocks, as `hang` says.
fn hang_forever(hang: Hang) -> ! {
    match hang {
        Hang::Spin => {
            println!("SPINNING");
            let _ = std::io::stdout().flush();
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        Hang::Block => {
            println!("BLOCKED");
            let _ = std::io::stdout().flush();
            // A lock held by a thread that never lets go: the classic deadlock.
            let lock = std::sync::Arc::new(std::sync::Mutex::new(()));
            let holder = lock.clone();
            let (held_tx, held_rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _guard = holder.lock();
                let _ = held_tx.send(());
                loop {
                    std::thread::park();
                }
            });
            let _ = held_rx.recv();
            loop {
                let _never = lock.lock();
            }
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let len = args.first().and_then(|a| a.parse::<usize>().ok());
    let spin = spin_point(args.get(1..).unwrap_or_default());
    let (Some(len), Ok(spin)) = (len, spin) else {
        eprintln!(
            "usage: ringdet-collective-test-worker <len> [spin|block <rank> <after>]: <len> is the \
             all-reduce length in f32 elements, got {args:?}"
        );
        return ExitCode::from(2);
    };
    let mut comm = match Communicator::from_env() {
        Ok(comm) => comm,
        Err(e) => {
            println!("RESULT {e}");
            return ExitCode::SUCCESS;
        }
    };
    let mut buffer = vec![1.0f32; len];
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < RUN_FOR {
        if let Some((hang, rank, after)) = spin
            && rank == comm.rank()
            && after == done
        {
            hang_forever(hang);
        }
        if let Err(e) = comm.all_reduce(&mut buffer, ReduceOp::Max) {
            println!("RESULT {e}");
            return ExitCode::SUCCESS;
        }
        done += 1;
        if done == 3 {
            println!("READY");
        }
    }
    println!("RESULT finished without error");
    ExitCode::SUCCESS
}
