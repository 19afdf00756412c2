//! The reading direction: what a worker reads to learn its place in the job, whoever started it:
//! `ringdet launch` (`RINGDET_*`), fleetrun / `paddle.distributed.launch` (`PADDLE_*`), torchrun
//! (`RANK`, `WORLD_SIZE`, ...) or Slurm's `srun` (`SLURM_*`). The first set found wins, in that
//! order.

use super::nodelist::expand_nodelist;
use super::{paddle, ringdet, slurm, torchrun};

/// Which convention the values came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `RINGDET_RANK`, ... (set by `ringdet launch`).
    Ringdet,
    /// `PADDLE_TRAINER_ID`, ... (fleetrun).
    Paddle,
    /// `RANK`, `WORLD_SIZE`, ... (torchrun).
    Torchrun,
    /// `SLURM_PROCID`, ... (srun).
    Slurm,
}

/// A worker's rank information.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerEnv {
    /// Where it came from.
    pub source: Source,
    /// Global rank, `0..world_size`.
    pub rank: usize,
    /// Number of workers in the job.
    pub world_size: usize,
    /// Rank among the workers of this host.
    pub local_rank: usize,
    /// Workers on this host.
    pub local_world_size: usize,
    /// `host:port` of every rank, when the convention gives them (not torchrun).
    pub endpoints: Option<Vec<String>>,
    /// Rank 0's `host:port` for rendezvous.
    pub master: Option<String>,
    /// The job token (`RINGDET_JOB_TOKEN`), whatever the source.
    pub job_token: Option<String>,
}

/// Missing or malformed rank variables, naming the variable.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum WorkerEnvError {
    /// A variable the convention needs is not set.
    #[error("{var} is not set (needed with {convention}'s variables)")]
    Missing {
        /// The variable.
        var: &'static str,
        /// The convention whose other variables are set.
        convention: &'static str,
    },
    /// A variable does not parse.
    #[error("{var}={value:?} is not {expected}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
    /// The values contradict each other.
    #[error("inconsistent rank variables: {0}")]
    Inconsistent(String),
}

/// Reads the process environment.
pub fn from_env() -> Result<Option<WorkerEnv>, WorkerEnvError> {
    from_lookup(|name| std::env::var(name).ok())
}

/// Reads through `get` (a test passes a map); `Ok(None)` when no convention's variables are set.
pub fn from_lookup(
    get: impl Fn(&str) -> Option<String>,
) -> Result<Option<WorkerEnv>, WorkerEnvError> {
    let found = if get(ringdet::RANK).is_some() {
        read_ringdet(&get)?
    } else if get(paddle::TRAINER_ID).is_some() {
        read_paddle(&get)?
    } else if get(torchrun::RANK).is_some() && get(torchrun::WORLD_SIZE).is_some() {
        read_torchrun(&get)?
    } else if get(slurm::PROCID).is_some() {
        read_slurm(&get)?
    } else {
        return Ok(None);
    };
    check(&found)?;
    Ok(Some(found))
}

fn number(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    convention: &'static str,
) -> Result<usize, WorkerEnvError> {
    let value = get(var).ok_or(WorkerEnvError::Missing { var, convention })?;
    value.trim().parse().map_err(|_| WorkerEnvError::Invalid {
        var,
        value,
        expected: "a non-negative integer",
    })
}

fn list(value: Option<String>) -> Option<Vec<String>> {
    value.map(|v| {
        v.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

fn read_ringdet(get: &impl Fn(&str) -> Option<String>) -> Result<WorkerEnv, WorkerEnvError> {
    let endpoints = list(get(ringdet::ENDPOINTS));
    Ok(WorkerEnv {
        source: Source::Ringdet,
        rank: number(get, ringdet::RANK, "ringdet")?,
        world_size: number(get, ringdet::WORLD_SIZE, "ringdet")?,
        local_rank: number(get, ringdet::LOCAL_RANK, "ringdet")?,
        local_world_size: number(get, ringdet::LOCAL_WORLD_SIZE, "ringdet")?,
        master: endpoints.as_ref().and_then(|e| e.first().cloned()),
        endpoints,
        job_token: get(ringdet::JOB_TOKEN),
    })
}

fn read_paddle(get: &impl Fn(&str) -> Option<String>) -> Result<WorkerEnv, WorkerEnvError> {
    const P: &str = "Paddle";
    let rank = number(get, paddle::TRAINER_ID, P)?;
    let endpoints = list(get(paddle::TRAINER_ENDPOINTS));
    let world_size = match get(paddle::TRAINERS_NUM) {
        Some(_) => number(get, paddle::TRAINERS_NUM, P)?,
        None => endpoints
            .as_ref()
            .map(Vec::len)
            .ok_or(WorkerEnvError::Missing {
                var: paddle::TRAINERS_NUM,
                convention: P,
            })?,
    };
    // Local size: given by the new launcher, else the endpoints on this rank's host.
    let local_world_size = match get(paddle::LOCAL_SIZE) {
        Some(_) => number(get, paddle::LOCAL_SIZE, P)?,
        None => {
            let eps = endpoints.as_ref().ok_or(WorkerEnvError::Missing {
                var: paddle::TRAINER_ENDPOINTS,
                convention: P,
            })?;
            let host_of = |e: &str| {
                e.rsplit_once(':')
                    .map(|(h, _)| h.to_string())
                    .unwrap_or_default()
            };
            let mine = eps.get(rank).map(|e| host_of(e)).unwrap_or_default();
            eps.iter().filter(|e| host_of(e) == mine).count()
        }
    };
    let local_rank = match (get(paddle::RANK_IN_NODE), get(paddle::LOCAL_RANK)) {
        (Some(_), _) => number(get, paddle::RANK_IN_NODE, P)?,
        (None, Some(_)) => number(get, paddle::LOCAL_RANK, P)?,
        (None, None) => rank % local_world_size.max(1),
    };
    Ok(WorkerEnv {
        source: Source::Paddle,
        rank,
        world_size,
        local_rank,
        local_world_size,
        master: get(paddle::MASTER).or_else(|| endpoints.as_ref().and_then(|e| e.first().cloned())),
        endpoints,
        job_token: get(ringdet::JOB_TOKEN),
    })
}

fn read_torchrun(get: &impl Fn(&str) -> Option<String>) -> Result<WorkerEnv, WorkerEnvError> {
    const T: &str = "torchrun";
    let master = match (get(torchrun::MASTER_ADDR), get(torchrun::MASTER_PORT)) {
        (Some(addr), Some(port)) => Some(format!("{addr}:{port}")),
        _ => None,
    };
    Ok(WorkerEnv {
        source: Source::Torchrun,
        rank: number(get, torchrun::RANK, T)?,
        world_size: number(get, torchrun::WORLD_SIZE, T)?,
        local_rank: number(get, torchrun::LOCAL_RANK, T)?,
        local_world_size: number(get, torchrun::LOCAL_WORLD_SIZE, T)?,
        endpoints: None,
        master,
        job_token: get(ringdet::JOB_TOKEN),
    })
}

fn read_slurm(get: &impl Fn(&str) -> Option<String>) -> Result<WorkerEnv, WorkerEnvError> {
    const S: &str = "Slurm";
    let rank = number(get, slurm::PROCID, S)?;
    let world_size = number(get, slurm::NTASKS, S)?;
    let local_rank = number(get, slurm::LOCALID, S)?;
    let nodelist = get(slurm::NODELIST).or_else(|| get(slurm::JOB_NODELIST));
    let hosts = match &nodelist {
        Some(text) => Some(
            expand_nodelist(text).map_err(|why| WorkerEnvError::Invalid {
                var: slurm::NODELIST,
                value: text.clone(),
                expected: why,
            })?,
        ),
        None => None,
    };
    let local_world_size = match get(slurm::NTASKS_PER_NODE) {
        Some(_) => number(get, slurm::NTASKS_PER_NODE, S)?,
        None => match hosts.as_ref().map(Vec::len) {
            Some(nodes) if nodes > 0 && world_size % nodes == 0 => world_size / nodes,
            _ => {
                return Err(WorkerEnvError::Missing {
                    var: slurm::NTASKS_PER_NODE,
                    convention: S,
                });
            }
        },
    };
    // Block distribution (srun's default): ranks 0..n-1 on the first node, and so on.
    let port: usize = get(torchrun::MASTER_PORT)
        .and_then(|p| p.parse().ok())
        .unwrap_or(6070);
    let endpoints = hosts.as_ref().map(|hosts| {
        (0..world_size)
            .map(|r| {
                format!(
                    "{}:{}",
                    hosts[(r / local_world_size.max(1)).min(hosts.len() - 1)],
                    port + r % local_world_size.max(1)
                )
            })
            .collect::<Vec<_>>()
    });
    Ok(WorkerEnv {
        source: Source::Slurm,
        rank,
        world_size,
        local_rank,
        local_world_size,
        master: endpoints.as_ref().and_then(|e| e.first().cloned()),
        endpoints,
        job_token: get(ringdet::JOB_TOKEN),
    })
}

fn check(env: &WorkerEnv) -> Result<(), WorkerEnvError> {
    let fail = |why: String| Err(WorkerEnvError::Inconsistent(why));
    if env.world_size == 0 || env.rank >= env.world_size {
        return fail(format!(
            "rank {} is not below world size {}",
            env.rank, env.world_size
        ));
    }
    if env.local_world_size == 0 || env.local_rank >= env.local_world_size {
        return fail(format!(
            "local rank {} is not below local world size {}",
            env.local_rank, env.local_world_size
        ));
    }
    if let Some(eps) = &env.endpoints
        && eps.len() != env.world_size
    {
        return fail(format!(
            "{} endpoints for world size {}",
            eps.len(),
            env.world_size
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<Option<WorkerEnv>, WorkerEnvError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn each_convention_maps_to_the_same_fields() {
        let r = env(&[
            ("RINGDET_RANK", "3"),
            ("RINGDET_WORLD_SIZE", "4"),
            ("RINGDET_LOCAL_RANK", "1"),
            ("RINGDET_LOCAL_WORLD_SIZE", "2"),
            ("RINGDET_ENDPOINTS", "a:1,a:2,b:1,b:2"),
            ("RINGDET_JOB_TOKEN", "tok"),
            ("RANK", "0"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (r.source, r.rank, r.local_rank, r.master.as_deref()),
            (Source::Ringdet, 3, 1, Some("a:1"))
        );
        let p = env(&[
            ("PADDLE_TRAINER_ID", "2"),
            ("PADDLE_TRAINERS_NUM", "4"),
            ("PADDLE_TRAINER_ENDPOINTS", "a:1,a:2,b:1,b:2"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (p.source, p.local_rank, p.local_world_size),
            (Source::Paddle, 0, 2)
        );
        let t = env(&[
            ("RANK", "5"),
            ("WORLD_SIZE", "8"),
            ("LOCAL_RANK", "1"),
            ("LOCAL_WORLD_SIZE", "4"),
            ("MASTER_ADDR", "h"),
            ("MASTER_PORT", "29500"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (t.source, t.master.as_deref(), t.endpoints),
            (Source::Torchrun, Some("h:29500"), None)
        );
        let s = env(&[
            ("SLURM_PROCID", "3"),
            ("SLURM_NTASKS", "4"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_NODELIST", "gpu[01-02]"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.local_world_size, 2);
        assert_eq!(
            s.endpoints.unwrap(),
            ["gpu01:6070", "gpu01:6071", "gpu02:6070", "gpu02:6071"]
        );
        assert_eq!(env(&[]).unwrap(), None);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = env(&[("RINGDET_RANK", "x"), ("RINGDET_WORLD_SIZE", "2")]).unwrap_err();
        assert!(e.to_string().contains("RINGDET_RANK"), "{e}");
        let e = env(&[("RANK", "0"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "0")]).unwrap_err();
        assert!(e.to_string().contains("LOCAL_WORLD_SIZE"), "{e}");
        let e = env(&[
            ("RANK", "2"),
            ("WORLD_SIZE", "2"),
            ("LOCAL_RANK", "0"),
            ("LOCAL_WORLD_SIZE", "1"),
        ])
        .unwrap_err();
        assert!(matches!(e, WorkerEnvError::Inconsistent(_)), "{e}");
    }
}
