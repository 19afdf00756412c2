//! Everything decided before talking to the other hosts: the worker command, this host's place
//! in `--ips`, its devices and ports, the same-job fingerprint, the log directory, the console
//! echo and the job token. [`plan`] reads them from `ringdet launch`'s flags; [`Plan::local`]
//! builds a single-host plan for tools that start their own ranks (`allreduce-perf --nproc`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::debug;

use super::devices::{self, Device};
use super::error::{LaunchError, Result};
use super::flags::LaunchFlags;
use super::ranks::{self, Topology};
use super::same_job::{self, Fingerprint};
use super::{interfaces, ports, token};
use ringdet_collective::worker_env::ringdet;

/// The program each worker runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerCommand {
    /// Executable.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// How it is described in the same-job check (the ringdet binary's path left out).
    pub shown: Vec<String>,
}

impl WorkerCommand {
    /// The running binary (`ringdet`) with `args` (a subcommand and its arguments).
    pub fn this_binary(args: &[String]) -> Result<WorkerCommand> {
        let exe = std::env::current_exe().map_err(LaunchError::io(
            "cannot find the ringdet binary to start workers with",
        ))?;
        let mut shown = vec!["ringdet".to_string()];
        shown.extend(args.iter().cloned());
        Ok(WorkerCommand {
            program: exe.display().to_string(),
            args: args.to_vec(),
            shown,
        })
    }
}

/// Decides between `<ringdet subcommand ...>` and `-- <program ...>` from the raw arguments:
/// the latter when the command follows a literal `--`.
pub fn worker_command(command: &[String], raw_args: &[String]) -> Result<WorkerCommand> {
    if command.is_empty() {
        return Err(LaunchError::Setting(
            "no worker given: `ringdet launch [options] <ringdet subcommand ...>` or `ringdet launch [options] -- <program ...>`".into(),
        ));
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
    match paddle_tool(&command[0]) {
        Some(sub) => {
            let mut args = vec![sub.to_string()];
            args.extend(command[1..].iter().cloned());
            WorkerCommand::this_binary(&args)
        }
        None => WorkerCommand::this_binary(command),
    }
}

/// PaddleDetection's `tools/<name>.py` (any path ending so) as the ringdet subcommand `<name>`
/// (`tools/train.py` → `ringdet train`), so fleetrun command lines work unchanged.
pub fn paddle_tool(program: &str) -> Option<&str> {
    let path = Path::new(program);
    let name = path.file_name()?.to_str()?.strip_suffix(".py")?;
    let parent = path.parent()?.file_name()?.to_str()?;
    (parent == "tools" && !name.is_empty()).then_some(name)
}

/// Which ranks' output the launcher echoes on its console, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Echo {
    /// Global ranks whose log is followed on stdout.
    pub ranks: Vec<usize>,
    /// Whether each line starts with `[rN] ` (else the worker's output is shown as is).
    pub prefixed: bool,
}

/// Everything resolved before talking to other hosts.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Hosts, this host's place, its devices and ports.
    pub topo: Topology,
    /// The first host's control-channel address.
    pub control: SocketAddr,
    /// What every host must agree on.
    pub fingerprint: Fingerprint,
    /// The user's job secret, when one was given.
    pub secret: Option<Vec<u8>>,
    /// Absolute log directory (`workerlog.N`, `endpoints.log`).
    pub log_dir: PathBuf,
    /// How long to wait for the other hosts' launchers.
    pub start_timeout: Duration,
    /// SIGTERM → SIGKILL delay when stopping workers.
    pub grace: Duration,
    /// How long a worker may stay stopped (state T) before the job fails naming it.
    pub stall_limit: Duration,
    /// The job's name (`--job_id`).
    pub job_id: String,
    /// The console echo.
    pub echo: Echo,
}

/// Resolves `ringdet launch`'s flags on this host (interfaces, `CUDA_VISIBLE_DEVICES`,
/// `FLAGS_START_PORT`, `POD_IP`, `RINGDET_JOB_SECRET`) into a plan; creates the log directory.
pub fn plan(flags: &LaunchFlags, cmd: &WorkerCommand) -> Result<Plan> {
    let ips = ranks::parse_ips(&flags.ips)?;
    let itfs = interfaces::local_addresses().map_err(LaunchError::io(
        "cannot list this machine's network interfaces",
    ))?;
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
        (None, Some(text)) => text.trim().parse().map_err(|_| {
            LaunchError::Setting(format!("FLAGS_START_PORT={text:?} is not a port"))
        })?,
        (None, None) => 6070,
    };
    if start_port == 0 || usize::from(start_port) + devices.len() - 1 > 65535 {
        return Err(LaunchError::Setting(format!(
            "--start_port {start_port} with {} workers leaves the port range 1..65535",
            devices.len()
        )));
    }
    let control_port = match flags.control_port {
        Some(port) => port,
        None if start_port > 1 => start_port - 1,
        None => {
            return Err(LaunchError::Setting(
                "--start_port 1 leaves no room for the control port (start_port - 1): pass --control_port".into(),
            ));
        }
    };
    let stall_limit = stall_limit(flags.stall_timeout)?;
    if !(flags.start_timeout > 0.0 && flags.grace_period >= 0.0) {
        return Err(LaunchError::Setting(
            "--start_timeout must be positive and --grace_period non-negative".into(),
        ));
    }
    let topo = Topology {
        ips,
        node_rank,
        devices,
        start_port,
    };
    let secret = match flags.job_secret_file.as_deref() {
        Some(file) if !file.exists() => Some(token::shared_secret_file(
            file,
            topo.node_rank == 0,
            std::time::Instant::now() + Duration::from_secs_f64(flags.start_timeout),
        )?),
        file => token::user_secret(file, std::env::var(ringdet::JOB_SECRET).ok())?,
    };
    if secret.is_none() && topo.ips.len() > 1 {
        tracing::warn!(
            "no job secret (RINGDET_JOB_SECRET or --job_secret_file): the launchers' control \
             key is derived from --job_id alone, so any process on one of the --ips hosts that \
             knows the job id can pose as a launcher and receive the job token. Give every host \
             the same RINGDET_JOB_SECRET, or a --job_secret_file on a file system they share \
             (the first host creates it when missing)"
        );
    }
    let echo = Echo {
        ranks: shown_ranks(flags.show_ranks.as_deref(), &topo)?,
        prefixed: true,
    };
    assemble(
        topo,
        control_port,
        cmd,
        secret,
        &flags.log_dir,
        Duration::from_secs_f64(flags.start_timeout),
        Duration::from_secs_f64(flags.grace_period),
        stall_limit,
        &flags.job_id,
        echo,
    )
}

impl Plan {
    /// A job of `nproc` CPU ranks on 127.0.0.1 alone, on consecutive free ports the system
    /// picks, logging to `log_dir`, with rank 0's output shown as is: what a tool that starts
    /// its own ranks needs, under the same supervision as `ringdet launch`.
    pub fn local(nproc: usize, cmd: &WorkerCommand, log_dir: &Path) -> Result<Plan> {
        if nproc == 0 {
            return Err(LaunchError::Setting(
                "no workers to start: the rank count must be at least 1".into(),
            ));
        }
        let host = IpAddr::V4(Ipv4Addr::LOCALHOST);
        // One more port below the workers' for the control channel (unused on one host).
        let first = ports::free_run(host, nproc + 1)?;
        let topo = Topology {
            ips: vec![host],
            node_rank: 0,
            devices: vec![Device::Cpu; nproc],
            start_port: first + 1,
        };
        let echo = Echo {
            ranks: vec![0],
            prefixed: false,
        };
        assemble(
            topo,
            first,
            cmd,
            None,
            log_dir,
            Duration::from_secs(30),
            Duration::from_secs(5),
            stall_limit(None)?,
            "local",
            echo,
        )
    }
}

/// The parts of a plan that follow from the topology and the command.
#[allow(clippy::too_many_arguments)]
fn assemble(
    topo: Topology,
    control_port: u16,
    cmd: &WorkerCommand,
    secret: Option<Vec<u8>>,
    log_dir: &Path,
    start_timeout: Duration,
    grace: Duration,
    stall_limit: Duration,
    job_id: &str,
    echo: Echo,
) -> Result<Plan> {
    let cwd =
        std::env::current_dir().map_err(LaunchError::io("cannot read the current directory"))?;
    let fingerprint = Fingerprint {
        version: env!("CARGO_PKG_VERSION").to_string(),
        command: cmd.shown.clone(),
        files: same_job::hash_configs(&cwd, &same_job::config_paths(&cmd.shown)),
        local_world_size: topo.local_world_size(),
        ips: topo.ips.iter().map(|ip| ip.to_string()).collect(),
        start_port: topo.start_port,
        job_id: job_id.to_string(),
        secret_proof: secret.as_deref().map(|s| token::secret_proof(job_id, s)),
    };
    std::fs::create_dir_all(log_dir).map_err(LaunchError::io(format!(
        "cannot create --log_dir {}",
        log_dir.display()
    )))?;
    let log_dir = std::fs::canonicalize(log_dir).map_err(LaunchError::io(format!(
        "cannot resolve --log_dir {}",
        log_dir.display()
    )))?;
    let plan = Plan {
        control: SocketAddr::new(topo.ips[0], control_port),
        topo,
        fingerprint,
        secret,
        log_dir,
        start_timeout,
        grace,
        stall_limit,
        job_id: job_id.to_string(),
        echo,
    };
    debug!(
        "plan: node {} of {} ({}), {} worker(s) {:?}, endpoints {:?}, control {}, logs in {}",
        plan.topo.node_rank,
        plan.topo.ips.len(),
        plan.topo.host(),
        plan.topo.local_world_size(),
        plan.topo.devices,
        plan.topo.endpoints(),
        plan.control,
        plan.log_dir.display()
    );
    Ok(plan)
}

/// Global ranks echoed on this console: `all`, a list, or (default) this host's first worker.
fn shown_ranks(spec: Option<&str>, topo: &Topology) -> Result<Vec<usize>> {
    match spec.map(str::trim) {
        None => Ok(vec![topo.global_rank(0)]),
        Some("all") => Ok((0..topo.world_size()).collect()),
        Some(list) => list
            .split(',')
            .map(|r| {
                r.trim().parse().map_err(|_| {
                    LaunchError::Setting(format!("--show_ranks entry `{r}` is not a rank"))
                })
            })
            .collect(),
    }
}

/// The variable that sets the stall limit when `--stall_timeout` is not given.
pub const STALL_TIMEOUT_VAR: &str = "RINGDET_STALL_TIMEOUT";
/// The stall limit when neither `--stall_timeout` nor `RINGDET_STALL_TIMEOUT` is given.
pub const DEFAULT_STALL_LIMIT: Duration = Duration::from_secs(20);

/// `--stall_timeout`, else `RINGDET_STALL_TIMEOUT`, else [`DEFAULT_STALL_LIMIT`]; positive.
fn stall_limit(flag: Option<f64>) -> Result<Duration> {
    let seconds = match (flag, std::env::var(STALL_TIMEOUT_VAR)) {
        (Some(seconds), _) => seconds,
        (None, Ok(text)) => text.trim().parse().map_err(|_| {
            LaunchError::Setting(format!(
                "{STALL_TIMEOUT_VAR}={text} is not a number of seconds"
            ))
        })?,
        (None, Err(_)) => return Ok(DEFAULT_STALL_LIMIT),
    };
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(LaunchError::Setting(format!(
            "--stall_timeout ({STALL_TIMEOUT_VAR}) must be a positive number of seconds, not {seconds}"
        )));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The job token: derived from the user's secret, else random (the first host's, sent with Go).
pub fn job_token(plan: &Plan) -> Result<String> {
    match &plan.secret {
        Some(secret) => Ok(token::derive_token(&plan.fingerprint.job_id, secret)),
        None => token::random_token(),
    }
}

#[cfg(test)]
mod tests {
    use super::paddle_tool;

    #[test]
    fn paddle_tools_map_to_subcommands() {
        assert_eq!(paddle_tool("tools/train.py"), Some("train"));
        assert_eq!(
            paddle_tool("/src/PaddleDetection/tools/eval.py"),
            Some("eval")
        );
        assert_eq!(paddle_tool("./tools/infer.py"), Some("infer"));
        assert_eq!(paddle_tool("train.py"), None);
        assert_eq!(paddle_tool("scripts/train.py"), None);
        assert_eq!(paddle_tool("train"), None);
    }
}
