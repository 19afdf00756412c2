//! Test helper, not a tool: one rank of a job for `tests/failure.rs`, which starts several of
//! these processes and kills one. It joins the job described by the `RINGDET_*` variables (as
//! `ringdet launch` sets them), all-reduces a buffer of `<len>` f32 elements (the one argument)
//! until something fails or 60 s pass, and reports on stdout: `READY` after the third
//! all-reduce, then one `RESULT <error>` line (`RESULT finished without error` if none failed).

use ringdet_collective::{Communicator, ReduceOp};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long the worker keeps all-reducing when nothing fails.
const RUN_FOR: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    let Some(len) = arg.as_deref().and_then(|a| a.parse::<usize>().ok()) else {
        eprintln!(
            "usage: ringdet-collective-test-worker <len>: <len> is the all-reduce length in f32 \
             elements, got {arg:?}"
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
    let mut done = 0;
    while start.elapsed() < RUN_FOR {
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
