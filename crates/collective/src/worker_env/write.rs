//! The writing direction: the variables a launcher gives each worker, ringdet's `RINGDET_*` plus
//! the names Paddle (`PADDLE_*`, `FLAGS_selected_gpus`) and torchrun (`RANK`, `WORLD_SIZE`, ...)
//! programs read, all derived from one [`Placement`] so the conventions cannot disagree.

use std::net::SocketAddr;
use std::path::Path;

use super::{paddle, ringdet, torchrun};

/// Variables removed from every worker's environment: proxies break peer-to-peer TCP (Paddle does
/// the same), and the user's job secret stays with the launcher (workers get the derived token).
pub const REMOVED: [&str; 7] = [
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    ringdet::JOB_SECRET,
];

/// One worker's place in the job, as a launcher knows it.
#[derive(Debug, Clone, Copy)]
pub struct Placement<'a> {
    /// Global rank, `0..endpoints.len()`.
    pub rank: usize,
    /// Rank among the workers of this host.
    pub local_rank: usize,
    /// Workers on this host.
    pub local_world_size: usize,
    /// This host's position among the hosts.
    pub node_rank: usize,
    /// Number of hosts.
    pub nnodes: usize,
    /// Every rank's endpoint, by global rank (rank 0's is the torchrun master).
    pub endpoints: &'a [SocketAddr],
    /// The token every rank presents in the collective's handshake.
    pub job_token: &'a str,
    /// The job's name.
    pub job_id: &'a str,
    /// The GPU ordinal (index inside CUDA_VISIBLE_DEVICES), or None for a CPU worker.
    pub gpu_ordinal: Option<usize>,
    /// The launcher's log directory.
    pub log_dir: &'a Path,
}

impl Placement<'_> {
    /// The variables for this worker, in a stable order (`RINGDET_*`, `PADDLE_*`, torchrun's,
    /// then `FLAGS_selected_gpus` for a GPU worker). Empty `endpoints` give empty endpoint values.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        let list = self
            .endpoints
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let current = self
            .endpoints
            .get(self.rank)
            .map(|e| e.to_string())
            .unwrap_or_default();
        let (master_addr, master_port) = self
            .endpoints
            .first()
            .map(|e| (e.ip().to_string(), e.port().to_string()))
            .unwrap_or_default();
        let world = self.endpoints.len().to_string();
        let local_world = self.local_world_size.to_string();
        let nnodes = self.nnodes.to_string();
        let node = self.node_rank.to_string();
        let (rank, local) = (self.rank.to_string(), self.local_rank.to_string());
        let device = match self.gpu_ordinal {
            None => "cpu".to_string(),
            Some(ordinal) => format!("cuda:{ordinal}"),
        };
        let mut vars = vec![
            (ringdet::RANK, rank.clone()),
            (ringdet::WORLD_SIZE, world.clone()),
            (ringdet::LOCAL_RANK, local.clone()),
            (ringdet::LOCAL_WORLD_SIZE, local_world.clone()),
            (ringdet::NODE_RANK, node.clone()),
            (ringdet::NNODES, nnodes.clone()),
            (ringdet::ENDPOINTS, list.clone()),
            (ringdet::JOB_TOKEN, self.job_token.to_string()),
            (ringdet::JOB_ID, self.job_id.to_string()),
            (ringdet::DEVICE, device),
            (paddle::TRAINER_ID, rank.clone()),
            (paddle::TRAINERS_NUM, world.clone()),
            (paddle::TRAINER_ENDPOINTS, list),
            (paddle::CURRENT_ENDPOINT, current),
            (paddle::RANK_IN_NODE, local.clone()),
            (paddle::GLOBAL_RANK, rank.clone()),
            (paddle::GLOBAL_SIZE, world.clone()),
            (paddle::LOCAL_RANK, local.clone()),
            (paddle::LOCAL_SIZE, local_world.clone()),
            (paddle::NNODES, nnodes),
            (paddle::LOG_DIR, self.log_dir.display().to_string()),
            (torchrun::RANK, rank),
            (torchrun::WORLD_SIZE, world),
            (torchrun::LOCAL_RANK, local),
            (torchrun::LOCAL_WORLD_SIZE, local_world),
            (torchrun::GROUP_RANK, node),
            (torchrun::MASTER_ADDR, master_addr),
            (torchrun::MASTER_PORT, master_port),
        ];
        if let Some(ordinal) = self.gpu_ordinal {
            vars.push((paddle::SELECTED_GPUS, ordinal.to_string()));
        }
        vars
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Source, from_lookup};
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn what_is_written_reads_back_in_every_convention() {
        let endpoints: Vec<SocketAddr> = ["10.0.0.1:7000", "10.0.0.1:7001", "10.0.0.2:7000"]
            .iter()
            .map(|e| e.parse().unwrap())
            .collect();
        let placement = Placement {
            rank: 2,
            local_rank: 0,
            local_world_size: 2,
            node_rank: 1,
            nnodes: 2,
            endpoints: &endpoints,
            job_token: "t0k",
            job_id: "j",
            gpu_ordinal: Some(1),
            log_dir: Path::new("/tmp/log"),
        };
        let vars: HashMap<&str, String> = placement.vars().into_iter().collect();
        assert_eq!(vars["RINGDET_RANK"], "2");
        assert_eq!(vars["PADDLE_TRAINER_ID"], "2");
        assert_eq!(vars["RANK"], "2");
        assert_eq!(vars["FLAGS_selected_gpus"], "1");
        assert_eq!(vars["RINGDET_DEVICE"], "cuda:1");
        assert_eq!(vars["PADDLE_CURRENT_ENDPOINT"], "10.0.0.2:7000");
        assert_eq!(
            (vars["MASTER_ADDR"].as_str(), vars["MASTER_PORT"].as_str()),
            ("10.0.0.1", "7000")
        );
        assert_eq!(vars["RINGDET_ENDPOINTS"], vars["PADDLE_TRAINER_ENDPOINTS"]);
        let read = from_lookup(|k| vars.get(k).cloned()).unwrap().unwrap();
        assert_eq!(read.source, Source::Ringdet);
        assert_eq!((read.rank, read.world_size, read.local_rank), (2, 3, 0));
        assert_eq!(read.job_token.as_deref(), Some("t0k"));
        // Without the RINGDET_* names a worker reads the same place from Paddle's.
        let paddle_only = from_lookup(|k| {
            (!k.starts_with("RINGDET_") || k == ringdet::JOB_TOKEN)
                .then(|| vars.get(k).cloned())
                .flatten()
        })
        .unwrap()
        .unwrap();
        assert_eq!(paddle_only.source, Source::Paddle);
        assert_eq!(
            (paddle_only.rank, paddle_only.local_world_size),
            (read.rank, read.local_world_size)
        );
        assert_eq!(paddle_only.endpoints, read.endpoints);
    }
}
