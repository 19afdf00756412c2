//! Collective communication over raw TCP for data-parallel trainers: ring all-reduce,
//! broadcast, all-gather (variable lengths), reduce-scatter and barrier on `&mut [T]` host
//! buffers, with an HMAC-authenticated handshake, deadlines on every wait, failures reported on
//! every rank by name, an asynchronous front end, and a host path where ranks of one machine
//! reduce large buffers by reading each other's memory (one leader per host runs the ring).
//!
//! ```no_run
//! use ringdet_collective::{Communicator, Config, ReduceOp};
//! let endpoints = ["127.0.0.1:29500".parse().unwrap(), "127.0.0.1:29501".parse().unwrap()];
//! let rank = 0; // 1 in the other process
//! let mut comm = Communicator::connect(rank, &endpoints, b"job-secret", Config::default())?;
//! let mut grads = vec![1.0f32; 1 << 20];
//! comm.all_reduce(&mut grads, ReduceOp::Avg)?;
//! # Ok::<(), ringdet_collective::CommError>(())
//! ```
//!
//! Layout: `wire` (frames, handshake) and `transport` (sockets, poll) know nothing of
//! algorithms; `schedule` describes the algorithms as data; `engine` runs a schedule over links.

pub mod async_comm;
mod collectives;
pub mod comm;
pub mod config;
pub mod control;
pub mod device;
pub mod dtype;
mod duplex;
pub mod engine;
pub mod env;
pub mod error;
mod hier;
mod master;
mod op_ctx;
mod peer_mem;
pub mod progress;
pub mod rendezvous;
pub mod schedule;
mod shm;
pub mod transport;
pub mod wire;
pub mod worker_env;

pub use async_comm::{AsyncCommunicator, Handle};
pub use comm::{AbortHandle, Communicator};
pub use config::Config;
pub use dtype::{DType, Element, ReduceOp};
pub use error::{CommError, Result};
pub use half::{bf16, f16};
pub use hier::remove_host_files;

impl Communicator {
    /// Moves this communicator onto a communication thread (see [`AsyncCommunicator`]).
    pub fn into_async(self) -> AsyncCommunicator {
        AsyncCommunicator::new(self)
    }
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
