//! Everything decided before talking to the other hosts: the worker command, this host's place
//! in `--ips`, its devices and ports, the same-job fingerprint, the log directory, the job token.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use super::flags::LaunchFlags;
use super::ranks::{self, Topology};
use super::same_job::{self, Fingerprint};
use super::{devices, interfaces, token};

/// The program each worker runs.
pub struct WorkerCommand {
    /// Executable.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// How it is described in the same-job check (the ringdet binary's path left out).
    pub shown: Vec<String>,
}

/// Decides between `<ringdet subcommand ...>` and `-- <program ...>` from the raw arguments:
/// the latter when the command follows a literal `--`.
pub fn worker_command(command: &[String], raw_args: &[String]) -> anyhow::Result<WorkerCommand> {
    if command.is_empty() {
        bail!(
            "no worker given: `ringdet launch [options] <ringdet subcommand ...>` or `ringdet launch [options] -- <program ...>`"
        );
    }
    let after_dashes = raw_args
        .iter()
        .position(|a| a == "--")
        .map(|i| &raw_args[i + 1..]);
    if after_dashes == Some(command) {
        return Ok(WorkerCommand {
            program: command[0].clone(),
            args: command[1..].to_vec(),
            shown: command.to_vec(),
        });
    }
    let exe =
        std::env::current_exe().context("cannot find the ringdet binary to start workers with")?;
    let mut shown = vec!["ringdet".to_string()];
    shown.extend(command.iter().cloned());
    Ok(WorkerCommand {
        program: exe.display().to_string(),
        args: command.to_vec(),
        shown,
    })
}

/// Everything resolved before talking to other hosts.
pub struct Plan {
    pub topo: Topology,
    pub control: SocketAddr,
    pub fingerprint: Fingerprint,
    pub secret: Option<Vec<u8>>,
    pub log_dir: PathBuf,
    pub start_timeout: Duration,
}

pub fn plan(flags: &LaunchFlags, cmd: &WorkerCommand) -> anyhow::Result<Plan> {
    let ips = ranks::parse_ips(&flags.ips)?;
    let itfs =
        interfaces::local_addresses().context("cannot list this machine's network interfaces")?;
    let pod_ip = std::env::var("POD_IP").ok();
    let node_rank = ranks::find_this_host(&ips, flags.host.as_deref(), pod_ip.as_deref(), &itfs)?;
    let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    let devices = devices::local_devices(
        flags.gpus.as_deref(),
        flags.nproc_per_node,
        visible.as_deref(),
        devices::driver_gpu_count(),
    )?;
    let start_port = match (flags.start_port, std::env::var("FLAGS_START_PORT").ok()) {
        (Some(port), _) => port,
        (None, Some(text)) => text
            .trim()
            .parse()
            .with_context(|| format!("FLAGS_START_PORT={text:?} is not a port"))?,
        (None, None) => 6070,
    };
    if start_port == 0 || usize::from(start_port) + devices.len() - 1 > 65535 {
        bail!(
            "--start_port {start_port} with {} workers leaves the port range 1..65535",
            devices.len()
        );
    }
    let control_port = match flags.control_port {
        Some(port) => port,
        None if start_port > 1 => start_port - 1,
        None => bail!(
            "--start_port 1 leaves no room for the control port (start_port - 1): pass --control_port"
        ),
    };
    if !(flags.start_timeout > 0.0 && flags.grace_period >= 0.0) {
        bail!("--start_timeout must be positive and --grace_period non-negative");
    }
    let topo = Topology {
        ips,
        node_rank,
        devices,
        start_port,
    };
    let secret = token::user_secret(
        flags.job_secret_file.as_deref(),
        std::env::var("RINGDET_JOB_SECRET").ok(),
    )?;
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let fingerprint = Fingerprint {
        version: env!("CARGO_PKG_VERSION").to_string(),
        command: cmd.shown.clone(),
        files: same_job::hash_configs(&cwd, &same_job::config_paths(&cmd.shown)),
        local_world_size: topo.local_world_size(),
        ips: topo.ips.iter().map(|ip| ip.to_string()).collect(),
        start_port,
        job_id: flags.job_id.clone(),
        secret_proof: secret
            .as_deref()
            .map(|s| token::secret_proof(&flags.job_id, s)),
    };
    std::fs::create_dir_all(&flags.log_dir)
        .with_context(|| format!("cannot create --log_dir {}", flags.log_dir.display()))?;
    let log_dir = std::fs::canonicalize(&flags.log_dir)?;
    Ok(Plan {
        control: SocketAddr::new(topo.ips[0], control_port),
        topo,
        fingerprint,
        secret,
        log_dir,
        start_timeout: Duration::from_secs_f64(flags.start_timeout),
    })
}

/// The job token: derived from the user's secret, else random (the first host's, sent with Go).
pub fn job_token(plan: &Plan) -> anyhow::Result<String> {
    match &plan.secret {
        Some(secret) => Ok(token::derive_token(&plan.fingerprint.job_id, secret)),
        None => token::random_token(),
    }
}
