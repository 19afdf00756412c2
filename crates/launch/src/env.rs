//! The environment each of this host's workers starts with: the topology turned into a
//! [`Placement`] and written by the one contract, `ringdet_collective::worker_env`.

use std::path::Path;

use ringdet_collective::worker_env::{Placement, ringdet};

use super::devices::Device;
use super::ranks::Topology;

pub use ringdet_collective::worker_env::REMOVED;

/// Everything a worker's environment needs beyond the topology.
#[derive(Debug, Clone, Copy)]
pub struct JobInfo<'a> {
    /// `--job_id`.
    pub job_id: &'a str,
    /// The token every rank presents in the collective's handshake.
    pub token: &'a str,
    /// Absolute log directory.
    pub log_dir: &'a Path,
    /// The progress board the workers beat on (slot = local rank), if the launcher keeps one.
    pub progress: Option<&'a Path>,
}

/// The variables set for this host's worker `local_rank`, in a stable order.
pub fn worker_env(topo: &Topology, local_rank: usize, job: &JobInfo) -> Vec<(String, String)> {
    let endpoints = topo.endpoints();
    let placement = Placement {
        rank: topo.global_rank(local_rank),
        local_rank,
        local_world_size: topo.local_world_size(),
        node_rank: topo.node_rank,
        nnodes: topo.ips.len(),
        endpoints: &endpoints,
        job_token: job.token,
        job_id: job.job_id,
        gpu_ordinal: match &topo.devices[local_rank] {
            Device::Cpu => None,
            Device::Cuda { ordinal, .. } => Some(*ordinal),
        },
        log_dir: job.log_dir,
    };
    let mut vars: Vec<(String, String)> = placement
        .vars()
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
    if let Some(board) = job.progress {
        vars.push((ringdet::PROGRESS_FILE.into(), board.display().to_string()));
        vars.push((ringdet::PROGRESS_SLOT.into(), local_rank.to_string()));
    }
    if let Some(threads) = worker_threads(topo.local_world_size()) {
        vars.push((RAYON_THREADS.into(), threads.to_string()));
    }
    vars
}

/// The thread-pool size variable of the CPU kernels (rayon's).
pub const RAYON_THREADS: &str = "RAYON_NUM_THREADS";

/// Threads per worker when the launcher chooses them: this host's cores shared out among its
/// `local_world_size` workers (at least 1), so that N CPU ranks do not each start a pool as large
/// as the machine and fight over its cores (torchrun sets `OMP_NUM_THREADS=1` for the same
/// reason; measured on the demo, 2 ranks on 2 cores: 54–56 images/s with 1 thread each against
/// 47–51 with 2). `None` when the launcher's own environment sets `RAYON_NUM_THREADS` (the
/// workers inherit it) or with a single worker (its pool takes every core anyway).
pub fn worker_threads(local_world_size: usize) -> Option<usize> {
    if local_world_size < 2 || std::env::var_os(RAYON_THREADS).is_some() {
        return None;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Some((cores / local_world_size).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ranks::parse_ips;

    #[test]
    fn the_topology_decides_rank_endpoints_and_device() {
        let topo = Topology {
            ips: parse_ips("10.0.0.1,10.0.0.2").unwrap(),
            node_rank: 1,
            devices: vec![
                Device::Cuda {
                    id: "5".into(),
                    ordinal: 0,
                },
                Device::Cuda {
                    id: "7".into(),
                    ordinal: 1,
                },
            ],
            start_port: 7000,
        };
        let job = JobInfo {
            job_id: "j",
            token: "t0k",
            log_dir: Path::new("/tmp/log"),
            progress: Some(Path::new("/dev/shm/board")),
        };
        let env: std::collections::HashMap<_, _> = worker_env(&topo, 1, &job).into_iter().collect();
        // The names are the collective's (worker_env tests them); the values come from here.
        assert_eq!(
            (
                env["RINGDET_RANK"].as_str(),
                env["RINGDET_LOCAL_RANK"].as_str()
            ),
            ("3", "1")
        );
        assert_eq!(env["PADDLE_CURRENT_ENDPOINT"], "10.0.0.2:7001");
        assert_eq!(env["RINGDET_DEVICE"], "cuda:1");
        assert_eq!(env["RINGDET_NNODES"], "2");
        assert_eq!(env["RINGDET_JOB_TOKEN"], "t0k");
        assert_eq!(env["RINGDET_PROGRESS_FILE"], "/dev/shm/board");
        assert_eq!(env["RINGDET_PROGRESS_SLOT"], "1");
    }
}
