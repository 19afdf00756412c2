//! The environment each worker starts with: ringdet's `RINGDET_*` contract plus the names Paddle
//! (`PADDLE_*`, `FLAGS_selected_gpus`) and torchrun (`RANK`, `WORLD_SIZE`, ...) programs read.

use std::path::Path;

use super::devices::Device;
use super::ranks::Topology;

/// Variables removed from every worker's environment: proxies break peer-to-peer TCP (Paddle does
/// the same), and the user's job secret stays with the launcher (workers get the derived token).
pub const REMOVED: [&str; 7] = [
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "RINGDET_JOB_SECRET",
];

/// Everything a worker's environment needs beyond the topology.
pub struct JobInfo<'a> {
    /// `--job_id`.
    pub job_id: &'a str,
    /// The token every rank presents in the collective's handshake.
    pub token: &'a str,
    /// Absolute log directory.
    pub log_dir: &'a Path,
}

/// The variables set for this host's worker `local_rank`, in a stable order.
pub fn worker_env(topo: &Topology, local_rank: usize, job: &JobInfo) -> Vec<(String, String)> {
    let rank = topo.global_rank(local_rank);
    let endpoints = topo.endpoints();
    let list = endpoints
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let current = endpoints[rank].to_string();
    let world = topo.world_size().to_string();
    let local_world = topo.local_world_size().to_string();
    let nnodes = topo.ips.len().to_string();
    let node = topo.node_rank.to_string();
    let (rank_s, local_s) = (rank.to_string(), local_rank.to_string());
    let device = match &topo.devices[local_rank] {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda { ordinal, .. } => format!("cuda:{ordinal}"),
    };
    let mut vars: Vec<(&str, String)> = vec![
        ("RINGDET_RANK", rank_s.clone()),
        ("RINGDET_WORLD_SIZE", world.clone()),
        ("RINGDET_LOCAL_RANK", local_s.clone()),
        ("RINGDET_LOCAL_WORLD_SIZE", local_world.clone()),
        ("RINGDET_NODE_RANK", node.clone()),
        ("RINGDET_NNODES", nnodes.clone()),
        ("RINGDET_ENDPOINTS", list.clone()),
        ("RINGDET_JOB_TOKEN", job.token.to_string()),
        ("RINGDET_JOB_ID", job.job_id.to_string()),
        ("RINGDET_DEVICE", device),
        ("PADDLE_TRAINER_ID", rank_s.clone()),
        ("PADDLE_TRAINERS_NUM", world.clone()),
        ("PADDLE_TRAINER_ENDPOINTS", list),
        ("PADDLE_CURRENT_ENDPOINT", current),
        ("PADDLE_RANK_IN_NODE", local_s.clone()),
        ("PADDLE_GLOBAL_RANK", rank_s.clone()),
        ("PADDLE_GLOBAL_SIZE", world.clone()),
        ("PADDLE_LOCAL_RANK", local_s.clone()),
        ("PADDLE_LOCAL_SIZE", local_world.clone()),
        ("PADDLE_NNODES", nnodes),
        ("PADDLE_LOG_DIR", job.log_dir.display().to_string()),
        ("RANK", rank_s),
        ("WORLD_SIZE", world),
        ("LOCAL_RANK", local_s),
        ("LOCAL_WORLD_SIZE", local_world),
        ("GROUP_RANK", node),
        ("MASTER_ADDR", endpoints[0].ip().to_string()),
        ("MASTER_PORT", endpoints[0].port().to_string()),
    ];
    if let Device::Cuda { ordinal, .. } = &topo.devices[local_rank] {
        vars.push(("FLAGS_selected_gpus", ordinal.to_string()));
    }
    vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launcher::ranks::parse_ips;

    #[test]
    fn names_agree_across_conventions() {
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
        };
        let env: std::collections::HashMap<_, _> = worker_env(&topo, 1, &job).into_iter().collect();
        assert_eq!(env["RINGDET_RANK"], "3");
        assert_eq!(env["PADDLE_TRAINER_ID"], "3");
        assert_eq!(env["RANK"], "3");
        assert_eq!(env["LOCAL_RANK"], "1");
        assert_eq!(env["FLAGS_selected_gpus"], "1");
        assert_eq!(env["RINGDET_DEVICE"], "cuda:1");
        assert_eq!(env["PADDLE_CURRENT_ENDPOINT"], "10.0.0.2:7001");
        assert_eq!(env["MASTER_ADDR"], "10.0.0.1");
        assert_eq!(env["MASTER_PORT"], "7000");
        assert_eq!(env["RINGDET_ENDPOINTS"], env["PADDLE_TRAINER_ENDPOINTS"]);
        assert_eq!(env["RINGDET_JOB_TOKEN"], "t0k");
    }
}
