//! Joining a job from the environment the launcher sets (`RINGDET_*`).

use crate::comm::Communicator;
use crate::config::Config;
use crate::error::{CommError, Result};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Rank of this process.
pub const RANK: &str = "RINGDET_RANK";
/// Number of ranks.
pub const WORLD_SIZE: &str = "RINGDET_WORLD_SIZE";
/// Rank among the ranks of this host.
pub const LOCAL_RANK: &str = "RINGDET_LOCAL_RANK";
/// Ranks on this host.
pub const LOCAL_WORLD_SIZE: &str = "RINGDET_LOCAL_WORLD_SIZE";
/// Comma-separated `ip:port` of every rank, by rank.
pub const ENDPOINTS: &str = "RINGDET_ENDPOINTS";
/// Shared secret proven in every handshake.
pub const JOB_TOKEN: &str = "RINGDET_JOB_TOKEN";

fn var(name: &str) -> Result<String> {
    std::env::var(name).map_err(|e| CommError::Env {
        var: name.into(),
        detail: e.to_string(),
    })
}

fn number(name: &str) -> Result<usize> {
    let v = var(name)?;
    v.trim().parse().map_err(|_| CommError::Env {
        var: name.into(),
        detail: format!("{v:?} is not a non-negative integer"),
    })
}

/// Parses a comma-separated list of `host:port` endpoints.
pub fn parse_endpoints(list: &str) -> std::result::Result<Vec<SocketAddr>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.to_socket_addrs()
                .map_err(|e| format!("{s:?}: {e}"))?
                .next()
                .ok_or_else(|| format!("{s:?} resolves to no address"))
        })
        .collect()
}

/// Reads optional tunables: `RINGDET_SEGMENT_BYTES`, `RINGDET_STREAMS`, `RINGDET_SMALL_BYTES`,
/// `RINGDET_SPIN_US`, `RINGDET_SENDER_THREAD_BYTES`, `RINGDET_RING_LAG`, `RINGDET_HALVING_DOUBLING` (1/0), `RINGDET_HALVING_DOUBLING_MAX_BYTES`,
/// `RINGDET_HANDSHAKE_TIMEOUT_S`, `RINGDET_DATA_TIMEOUT_S`,
/// `RINGDET_HIERARCHICAL` (1/0), `RINGDET_HIER_DIRECT_BYTES` on top of `base`.
pub fn config_from_env(base: Config) -> Result<Config> {
    let mut c = base;
    let opt = |name: &str| -> Result<Option<usize>> {
        if std::env::var_os(name).is_some() {
            number(name).map(Some)
        } else {
            Ok(None)
        }
    };
    if let Some(v) = opt("RINGDET_SEGMENT_BYTES")? {
        c.segment_bytes = v;
    }
    if let Some(v) = opt("RINGDET_STREAMS")? {
        c.streams = v;
    }
    if let Some(v) = opt("RINGDET_SMALL_BYTES")? {
        c.small_bytes = v;
    }
    if let Some(v) = opt("RINGDET_SPIN_US")? {
        c.spin = Duration::from_micros(v as u64);
    }
    if let Some(v) = opt("RINGDET_HANDSHAKE_TIMEOUT_S")? {
        c.handshake_timeout = Duration::from_secs(v as u64);
    }
    if let Some(v) = opt("RINGDET_DATA_TIMEOUT_S")? {
        c.data_timeout = Duration::from_secs(v as u64);
    }
    if let Some(v) = opt("RINGDET_SENDER_THREAD_BYTES")? {
        c.sender_thread_bytes = v;
    }
    if let Some(v) = opt("RINGDET_RING_LAG")? {
        c.ring_lag = v.max(1);
    }
    if let Some(v) = opt("RINGDET_HALVING_DOUBLING")? {
        c.halving_doubling = v != 0;
    }
    if let Some(v) = opt("RINGDET_HALVING_DOUBLING_MAX_BYTES")? {
        c.halving_doubling_max_bytes = v;
    }
    if let Some(v) = opt("RINGDET_HIERARCHICAL")? {
        c.hierarchical = v != 0;
    }
    if let Some(v) = opt("RINGDET_HIER_DIRECT_BYTES")? {
        c.hier_direct_bytes = v;
    }
    Ok(c)
}

impl Communicator {
    /// Joins the job described by `RINGDET_RANK`, `RINGDET_WORLD_SIZE`, `RINGDET_ENDPOINTS` and
    /// `RINGDET_JOB_TOKEN` (as set by `ringdet launch`), with tunables from
    /// [`config_from_env`] over the defaults.
    pub fn from_env() -> Result<Communicator> {
        Self::from_env_with(Config::default())
    }

    /// Like [`from_env`](Communicator::from_env) with `base` settings under the environment's.
    pub fn from_env_with(base: Config) -> Result<Communicator> {
        let rank = number(RANK)?;
        let world = number(WORLD_SIZE)?;
        let endpoints = parse_endpoints(&var(ENDPOINTS)?).map_err(|detail| CommError::Env {
            var: ENDPOINTS.into(),
            detail,
        })?;
        if endpoints.len() != world {
            return Err(CommError::Env {
                var: ENDPOINTS.into(),
                detail: format!("{} endpoints but {WORLD_SIZE} = {world}", endpoints.len()),
            });
        }
        if rank >= world {
            return Err(CommError::Env {
                var: RANK.into(),
                detail: format!("{rank} is not below {WORLD_SIZE} = {world}"),
            });
        }
        let token = var(JOB_TOKEN)?;
        if token.is_empty() {
            return Err(CommError::Env {
                var: JOB_TOKEN.into(),
                detail: "empty".into(),
            });
        }
        let config = config_from_env(base)?;
        Communicator::connect(rank, &endpoints, token.as_bytes(), config)
    }
}
