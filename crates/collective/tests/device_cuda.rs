//! Device collectives (`cuda` feature): NCCL's absence is an error on every rank, never a panic;
//! with a GPU, 2 ranks on one device sum through `RingViaHost` and through `NcclComm`.
//! The GPU tests start with `gpu_or_skip` (this crate cannot depend on ringdet-kernels, so the
//! pattern of `ringdet_kernels::runtime::testing` is written here): without a GPU they print
//! `SKIP <test>: <reason>` to stderr and pass; with `REQUIRE_GPU=1` they fail. NCCL missing on
//! the GPU machine skips the NCCL test the same way unless `REQUIRE_NCCL=1`.
#![cfg(feature = "cuda")]

mod common;

use common::{config, run_ranks};
use ringdet_collective::device::cudarc::driver::{CudaContext, CudaStream};
use ringdet_collective::device::{
    CommBackend, DeviceAllReduce, DeviceCommError, NcclComm, RingViaHost, nccl_probe,
};
use ringdet_collective::{CommError, Communicator};
use std::sync::Arc;

fn skip_or_fail(var: &str, test: &str, reason: &str) {
    if std::env::var(var).is_ok_and(|v| v == "1") {
        panic!("{test}: {var}=1 but: {reason}");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {reason}");
}

/// CUDA device 0's context, or `None` after printing `SKIP <test>: <reason>`.
fn gpu_or_skip(test: &str) -> Option<Arc<CudaContext>> {
    // SAFETY: only tries to dlopen libcuda (cudarc panics on first use without it).
    if !unsafe { ringdet_collective::device::cudarc::driver::sys::is_culib_present() } {
        skip_or_fail(
            "REQUIRE_GPU",
            test,
            "libcuda.so (the NVIDIA driver) was not found",
        );
        return None;
    }
    match CudaContext::new(0) {
        Ok(ctx) => Some(ctx),
        Err(e) => {
            skip_or_fail("REQUIRE_GPU", test, &format!("cuda:0: {e}"));
            None
        }
    }
}

fn as_comm(e: DeviceCommError) -> CommError {
    CommError::Local(e.to_string())
}

#[test]
fn nccl_missing_is_a_clear_error_on_every_rank_not_a_panic() {
    if let Ok(found) = nccl_probe() {
        eprintln!("{found} is installed here: nothing to check");
        return;
    }
    let results = run_ranks(
        2,
        config(),
        |_, comm: &mut Communicator| match NcclComm::new(comm, 0) {
            Ok(_) => Ok(String::new()),
            Err(e) => Ok(e.to_string()),
        },
    );
    for (rank, r) in results.into_iter().enumerate() {
        let msg = r.expect("the exchange itself works");
        eprintln!("rank {rank}: {msg}");
        assert!(
            msg.starts_with(&format!(
                "rank {rank}: NCCL is not available: libnccl.so.2 could not be loaded ("
            )),
            "{msg}"
        );
        assert!(msg.ends_with("); use -o comm_backend=ring"), "{msg}");
    }
}

#[derive(Clone, Copy)]
enum Which {
    Ring,
    Nccl,
}

fn local(e: impl std::fmt::Display) -> CommError {
    CommError::Local(e.to_string())
}

/// One rank per entry of `ordinals` (rank r on CUDA device `ordinals[r]`, its own stream),
/// through `which`: every rank all-reduces `rank + i` over an odd length, then again over the
/// first 10 elements only (a sub-view; the ring's staging buffer is reused), then broadcasts the
/// last rank's buffer. Checks the sums (integers: exact in f32) and the broadcast.
fn ranks_sum(ordinals: &[usize], which: Which) {
    let (world, n) = (ordinals.len(), 4096 + 3);
    let results = run_ranks(world, config(), |rank, comm: &mut Communicator| {
        let ctx = CudaContext::new(ordinals[rank]).map_err(local)?;
        let mut dev: Box<dyn DeviceAllReduce + '_> = match which {
            Which::Ring => Box::new(RingViaHost::new(&mut *comm)),
            Which::Nccl => Box::new(NcclComm::new(comm, ordinals[rank]).map_err(as_comm)?),
        };
        let expect = match which {
            Which::Ring => CommBackend::Ring,
            Which::Nccl => CommBackend::Nccl,
        };
        assert_eq!(dev.backend(), expect);
        assert_eq!((dev.rank(), dev.world_size()), (rank, world));
        let stream: Arc<CudaStream> = ctx.new_stream().map_err(local)?;
        let host: Vec<f32> = (0..n).map(|i| (rank + i) as f32).collect();
        let mut buf = stream.clone_htod(&host).map_err(local)?;
        dev.all_reduce_sum_f32(&mut buf.as_view_mut(), &stream)
            .map_err(as_comm)?;
        dev.all_reduce_sum_f32(&mut buf.slice_mut(0..10), &stream)
            .map_err(as_comm)?;
        let summed = stream.clone_dtoh(&buf).map_err(local)?;
        let mut mine = stream
            .clone_htod(&vec![rank as f32 * 10.0; n])
            .map_err(local)?;
        dev.broadcast_f32(&mut mine.as_view_mut(), world - 1, &stream)
            .map_err(as_comm)?;
        let got = stream.clone_dtoh(&mine).map_err(local)?;
        Ok((summed, got))
    });
    let ranks_sum: usize = (0..world).sum();
    for r in results {
        let (summed, got) = r.expect("rank failed");
        for (i, v) in summed.iter().enumerate() {
            let once = (ranks_sum + world * i) as f32;
            let want = if i < 10 { world as f32 * once } else { once };
            assert_eq!(*v, want, "element {i}");
        }
        let last = (world - 1) as f32 * 10.0;
        assert!(
            got.iter().all(|&v| v == last),
            "broadcast from the last rank"
        );
    }
}

#[test]
fn ring_via_host_cuda_two_ranks_on_one_gpu_sum() {
    if gpu_or_skip("ring_via_host_cuda_two_ranks_on_one_gpu_sum").is_none() {
        return;
    }
    ranks_sum(&[0, 0], Which::Ring);
}

/// The GPU and NCCL, or `None` after printing why not.
fn gpu_and_nccl_or_skip(test: &str) -> Option<Arc<CudaContext>> {
    let ctx = gpu_or_skip(test)?;
    match nccl_probe() {
        Ok(_) => Some(ctx),
        Err(why) => {
            skip_or_fail("REQUIRE_NCCL", test, &why);
            None
        }
    }
}

#[test]
fn nccl_cuda_one_rank_runs_every_call() {
    if gpu_and_nccl_or_skip("nccl_cuda_one_rank_runs_every_call").is_none() {
        return;
    }
    ranks_sum(&[0], Which::Nccl);
}

#[test]
fn nccl_cuda_two_ranks_on_one_gpu_are_refused_by_name() {
    if gpu_and_nccl_or_skip("nccl_cuda_two_ranks_on_one_gpu_are_refused_by_name").is_none() {
        return;
    }
    let results = run_ranks(2, config(), |_, comm: &mut Communicator| {
        Ok(NcclComm::new(comm, 0).err().map(|e| e.to_string()))
    });
    for r in results {
        let msg = r.expect("the exchange works").expect("refused");
        assert!(msg.contains("ranks 0, 1 share one GPU"), "{msg}");
    }
}

#[test]
fn nccl_cuda_two_gpus_sum() {
    let test = "nccl_cuda_two_gpus_sum";
    let Some(ctx) = gpu_and_nccl_or_skip(test) else {
        return;
    };
    let _ = ctx;
    match CudaContext::device_count() {
        Ok(n) if n >= 2 => ranks_sum(&[0, 1], Which::Nccl),
        other => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIP {test}: needs 2 CUDA devices, found {other:?}"
            );
        }
    }
}
