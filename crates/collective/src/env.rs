//! Joining a job from the environment a launcher sets (the names and the reader are
//! [`worker_env`]'s), and the collective's tunables from `RINGDET_*` variables.

use crate::comm::Communicator;
use crate::config::Config;
use crate::error::{CommError, Result};
use crate::worker_env::{self, ringdet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

fn number(name: &str) -> Result<usize> {
    let v = std::env::var(name).map_err(|e| CommError::Env {
        var: name.into(),
        detail: e.to_string(),
    })?;
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
    /// Joins the job described by the rank variables ([`worker_env::from_env`]: `RINGDET_*` as
    /// set by `ringdet launch`, else fleetrun's or Slurm's, which also give every endpoint) and
    /// `RINGDET_JOB_TOKEN`, with tunables from [`config_from_env`] over the defaults.
    pub fn from_env() -> Result<Communicator> {
        Self::from_env_with(Config::default())
    }

    /// Like [`from_env`](Communicator::from_env) with `base` settings under the environment's.
    pub fn from_env_with(base: Config) -> Result<Communicator> {
        // From now on the launcher, if it keeps a progress board, judges this rank's progress.
        crate::progress::attach();
        let env = worker_env::from_env()?.ok_or_else(|| CommError::Env {
            var: ringdet::RANK.into(),
            detail: "not set, nor any other launcher's rank variables: start this program with \
                     `ringdet launch`"
                .into(),
        })?;
        let listed = env.endpoints.ok_or_else(|| CommError::Env {
            var: ringdet::ENDPOINTS.into(),
            detail: format!(
                "not set ({:?} rank variables give no endpoints)",
                env.source
            ),
        })?;
        let endpoints = parse_endpoints(&listed.join(",")).map_err(|detail| CommError::Env {
            var: ringdet::ENDPOINTS.into(),
            detail,
        })?;
        let token = env.job_token.unwrap_or_default();
        if token.is_empty() {
            return Err(CommError::Env {
                var: ringdet::JOB_TOKEN.into(),
                detail: "not set or empty".into(),
            });
        }
        let config = config_from_env(base)?;
        Communicator::connect(env.rank, &endpoints, token.as_bytes(), config)
    }
}
