//! The launcher behind `ringdet launch`: one worker process per device on every host, ranks and
//! environment computed from `--ips`, a control channel between the hosts' launchers, and process
//! hygiene so that no worker outlives its job. Linux only (prctl, /proc).

pub mod control;
pub mod devices;
pub mod env;
pub mod events;
pub mod failure;
pub mod flags;
pub mod interfaces;
pub mod logs;
pub mod plan;
pub mod ports;
pub mod procs;
pub mod ranks;
pub mod same_job;
pub mod sentinel;
pub mod signals;
pub mod slurm_nodelist;
pub mod spawn;
pub mod start;
pub mod supervisor;
pub mod token;
pub mod wire;
pub mod worker_env;
