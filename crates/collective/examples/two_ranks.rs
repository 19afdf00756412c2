//! The README example: run `cargo run -p ringdet-collective --example two_ranks -- 0` and
//! `... -- 1` in two shells (ranks listen on 127.0.0.1:29500 and 29501).

use ringdet_collective::{Communicator, Config, ReduceOp};

fn main() -> Result<(), ringdet_collective::CommError> {
    let endpoints = ["127.0.0.1:29500", "127.0.0.1:29501"]
        .iter()
        .map(|e| {
            e.parse()
                .map_err(|_| ringdet_collective::CommError::Invalid(format!("endpoint {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rank: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let mut comm = Communicator::connect(rank, &endpoints, b"job-secret", Config::default())?;

    let mut grads = vec![rank as f32; 1 << 20];
    comm.all_reduce(&mut grads, ReduceOp::Avg)?;
    let detections = comm.all_gather(&vec![rank as u8; rank])?;

    let comm = comm.into_async();
    let handle = comm.submit(vec![1.0f32; 4096], ReduceOp::Sum);
    let reduced: Vec<f32> = handle.wait()?;
    println!(
        "rank {rank}: avg {} gathered {:?} sum {}",
        grads[0], detections, reduced[0]
    );
    Ok(())
}
