//! The launcher behind `ringdet launch`, as a library: one worker process per device on every
//! host, ranks and environment computed from `--ips`, a control channel between the hosts'
//! launchers, and process hygiene so that no worker outlives its job. Linux only (prctl, /proc).
//! It reports through `tracing` (target `ringdet_launch`); the `ringdet` binary installs the
//! subscriber and prints the outcome.
//!
//! From flags to a finished job:
//! - [`plan`]: the worker command, this host's place in `--ips` ([`ranks`]), its [`devices`] and
//!   [`ports`] (bind-probed, with their holders), the same-job fingerprint ([`same_job`]), the job
//!   token ([`token`]); [`plan::Plan::local`] is a single-host plan for tools that start their own
//!   ranks.
//! - [`start`](mod@start): start-up over the [`control`] channel ([`wire`] is its format): the first host
//!   gathers and judges the others, which join; the orphan [`sentinel`] is forked first, and
//!   [`signals`] become [`events`].
//! - [`spawn`]: this host's workers with their environment ([`env`](mod@env), written by
//!   `ringdet_collective::worker_env`), process groups ([`procs`]) and [`logs`], with the
//!   [`job_files`] record that lets dead jobs' `/dev/shm` files be removed; then the
//!   [`supervisor`] runs the job to its end and returns the [`supervisor::Outcome`] and its
//!   root cause ([`failure`]).
//!
//! The README's example computes a plan's ranks and worker environment without spawning.
#![warn(missing_docs)]

pub mod control;
pub mod devices;
pub mod env;
pub mod error;
pub mod events;
pub mod failure;
pub mod flags;
pub mod interfaces;
pub mod job_files;
pub mod logs;
pub mod plan;
pub mod ports;
pub mod procs;
pub mod ranks;
pub mod same_job;
pub mod sentinel;
pub mod signals;
pub mod spawn;
pub mod start;
pub mod supervisor;
pub mod token;
pub mod wire;

pub use error::{LaunchError, Result};
pub use flags::LaunchFlags;
pub use plan::{Plan, WorkerCommand};
pub use start::{launch, start};
pub use supervisor::Outcome;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
