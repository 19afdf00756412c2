//! The worker-environment contract, written once: the names of the variables that tell a worker
//! its place in a job, in ringdet's own convention (`RINGDET_*`) and in the ones it interoperates
//! with (fleetrun's `PADDLE_*`, torchrun's `RANK`/`WORLD_SIZE`/..., Slurm's `SLURM_*`), the
//! writer a launcher uses ([`Placement::vars`]) and the reader a worker uses ([`from_env`]).
//!
//! It lives in the collective because joining a job from the environment
//! ([`Communicator::from_env`](crate::Communicator::from_env)) is the lowest consumer; the
//! launcher (`ringdet-launch`) writes through it and the tools read through it, so no other
//! crate spells a variable name. docs/launch.md has the table.

mod device;
mod nodelist;
mod read;
mod write;

pub use device::{BoundDevice, bound_device, bound_device_from};
pub use nodelist::expand_nodelist;
pub use read::{Source, WorkerEnv, WorkerEnvError, from_env, from_lookup};
pub use write::{Placement, REMOVED};

/// `RINGDET_*`: what `ringdet launch` sets and reads first.
pub mod ringdet {
    /// Global rank, `0..world size`.
    pub const RANK: &str = "RINGDET_RANK";
    /// Number of ranks in the job.
    pub const WORLD_SIZE: &str = "RINGDET_WORLD_SIZE";
    /// Rank among the ranks of this host.
    pub const LOCAL_RANK: &str = "RINGDET_LOCAL_RANK";
    /// Ranks on this host.
    pub const LOCAL_WORLD_SIZE: &str = "RINGDET_LOCAL_WORLD_SIZE";
    /// This host's position in `--ips`.
    pub const NODE_RANK: &str = "RINGDET_NODE_RANK";
    /// Number of hosts.
    pub const NNODES: &str = "RINGDET_NNODES";
    /// Comma-separated `ip:port` of every rank, by rank.
    pub const ENDPOINTS: &str = "RINGDET_ENDPOINTS";
    /// Shared secret every rank proves in the collective's handshake.
    pub const JOB_TOKEN: &str = "RINGDET_JOB_TOKEN";
    /// The launcher's `--job_id`.
    pub const JOB_ID: &str = "RINGDET_JOB_ID";
    /// `cpu` or `cuda:<ordinal>`.
    pub const DEVICE: &str = "RINGDET_DEVICE";
    /// The user's job secret, read by the launcher and never passed to workers.
    pub const JOB_SECRET: &str = "RINGDET_JOB_SECRET";
    /// The launcher's progress board in `/dev/shm` (see [`crate::progress`]).
    pub const PROGRESS_FILE: &str = "RINGDET_PROGRESS_FILE";
    /// This worker's slot in the progress board.
    pub const PROGRESS_SLOT: &str = "RINGDET_PROGRESS_SLOT";
}

/// `PADDLE_*` and `FLAGS_selected_gpus`: what fleetrun / `paddle.distributed.launch` set.
pub mod paddle {
    /// Global rank.
    pub const TRAINER_ID: &str = "PADDLE_TRAINER_ID";
    /// Number of ranks.
    pub const TRAINERS_NUM: &str = "PADDLE_TRAINERS_NUM";
    /// Comma-separated `ip:port` of every rank.
    pub const TRAINER_ENDPOINTS: &str = "PADDLE_TRAINER_ENDPOINTS";
    /// This rank's `ip:port`.
    pub const CURRENT_ENDPOINT: &str = "PADDLE_CURRENT_ENDPOINT";
    /// Rank among the ranks of this host (old launcher).
    pub const RANK_IN_NODE: &str = "PADDLE_RANK_IN_NODE";
    /// Global rank (new launcher).
    pub const GLOBAL_RANK: &str = "PADDLE_GLOBAL_RANK";
    /// Number of ranks (new launcher).
    pub const GLOBAL_SIZE: &str = "PADDLE_GLOBAL_SIZE";
    /// Rank among the ranks of this host (new launcher).
    pub const LOCAL_RANK: &str = "PADDLE_LOCAL_RANK";
    /// Ranks on this host (new launcher).
    pub const LOCAL_SIZE: &str = "PADDLE_LOCAL_SIZE";
    /// Number of hosts.
    pub const NNODES: &str = "PADDLE_NNODES";
    /// The launcher's log directory.
    pub const LOG_DIR: &str = "PADDLE_LOG_DIR";
    /// Rank 0's `ip:port` for rendezvous.
    pub const MASTER: &str = "PADDLE_MASTER";
    /// The GPU ordinal this rank uses.
    pub const SELECTED_GPUS: &str = "FLAGS_selected_gpus";
}

/// torchrun's names.
pub mod torchrun {
    /// Global rank.
    pub const RANK: &str = "RANK";
    /// Number of ranks.
    pub const WORLD_SIZE: &str = "WORLD_SIZE";
    /// Rank among the ranks of this host.
    pub const LOCAL_RANK: &str = "LOCAL_RANK";
    /// Ranks on this host.
    pub const LOCAL_WORLD_SIZE: &str = "LOCAL_WORLD_SIZE";
    /// This host's node rank.
    pub const GROUP_RANK: &str = "GROUP_RANK";
    /// Rank 0's address.
    pub const MASTER_ADDR: &str = "MASTER_ADDR";
    /// Rank 0's port (also the base port of Slurm endpoints).
    pub const MASTER_PORT: &str = "MASTER_PORT";
}

/// Slurm's names, as `srun` sets them.
pub mod slurm {
    /// Global rank.
    pub const PROCID: &str = "SLURM_PROCID";
    /// Number of ranks.
    pub const NTASKS: &str = "SLURM_NTASKS";
    /// Rank among the ranks of this host.
    pub const LOCALID: &str = "SLURM_LOCALID";
    /// Compressed host list of the step.
    pub const NODELIST: &str = "SLURM_NODELIST";
    /// Compressed host list of the job (when the step's is not set).
    pub const JOB_NODELIST: &str = "SLURM_JOB_NODELIST";
    /// Ranks on each host.
    pub const NTASKS_PER_NODE: &str = "SLURM_NTASKS_PER_NODE";
}
