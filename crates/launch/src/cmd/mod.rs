//! One module per subcommand, each with its clap `Args` and a `run` function.

pub mod allreduce_perf;
pub mod coco_eval;
pub mod config;
pub mod convert;
pub mod demo;
#[cfg(test)]
mod error_chains;
pub mod eval;
pub mod export;
pub mod infer;
pub mod info;
pub mod launch;
pub mod make_dataset;
pub mod netsim_relay;
pub mod parity;
pub mod perf_detect;
pub mod plot;
pub mod scaling_sim;
pub mod train;
