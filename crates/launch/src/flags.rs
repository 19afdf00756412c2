//! The flags of `ringdet launch`, spelled as fleetrun and `paddle.distributed.launch` spell them
//! (underscores), with the hyphenated forms as hidden aliases.

use std::path::PathBuf;

/// The options of `ringdet launch` and its worker command.
#[derive(clap::Args, Debug, Clone)]
pub struct LaunchFlags {
    /// Hosts of the job, comma-separated IP addresses; node rank = position in this list.
    #[arg(long = "ips", default_value = "127.0.0.1", value_name = "IP,IP,..")]
    pub ips: String,

    /// GPU ids, one worker per id, as listed in CUDA_VISIBLE_DEVICES (default: every visible GPU).
    #[arg(long = "gpus", visible_aliases = ["selected_gpus", "devices"], value_name = "ID,ID,..")]
    pub gpus: Option<String>,

    /// Number of workers on this host; without --gpus they are CPU workers.
    #[arg(long = "nproc_per_node", alias = "nproc-per-node", value_name = "N")]
    pub nproc_per_node: Option<usize>,

    /// Directory for workerlog.N (N = global rank) and endpoints.log.
    #[arg(
        long = "log_dir",
        alias = "log-dir",
        default_value = "log",
        value_name = "DIR"
    )]
    pub log_dir: PathBuf,

    /// This host's IP as written in --ips (default: POD_IP, else the local interface that matches).
    #[arg(long = "host", value_name = "IP")]
    pub host: Option<String>,

    /// First worker port: rank r listens on start_port + its local rank (default: FLAGS_START_PORT, else 6070).
    #[arg(long = "start_port", alias = "start-port", value_name = "PORT")]
    pub start_port: Option<u16>,

    /// Port of the launchers' control channel on the first host (default: start_port - 1).
    #[arg(long = "control_port", alias = "control-port", value_name = "PORT")]
    pub control_port: Option<u16>,

    /// Job name: part of the same-job check and of the job token.
    #[arg(
        long = "job_id",
        alias = "job-id",
        default_value = "default",
        value_name = "NAME"
    )]
    pub job_id: String,

    /// File holding a secret shared by every host; the job token is derived from it
    /// (RINGDET_JOB_SECRET does the same; without either, the first host draws a random token,
    /// and several hosts are warned that only the address check guards the control channel).
    /// A missing file is created by the first host (random, mode 0600) and waited for by the
    /// others: put it on a file system every host shares.
    #[arg(
        long = "job_secret_file",
        alias = "job-secret-file",
        value_name = "FILE"
    )]
    pub job_secret_file: Option<PathBuf>,

    /// Seconds to wait for every host's launcher at start-up.
    #[arg(
        long = "start_timeout",
        alias = "start-timeout",
        default_value_t = 300.0,
        value_name = "SECONDS"
    )]
    pub start_timeout: f64,

    /// Seconds between SIGTERM and SIGKILL when stopping workers.
    #[arg(
        long = "grace_period",
        alias = "grace-period",
        default_value_t = 10.0,
        value_name = "SECONDS"
    )]
    pub grace_period: f64,

    /// Seconds a worker may stay stopped (SIGSTOP, Ctrl-Z, a debugger: state T in /proc), or
    /// run without progress heartbeats while other ranks wait for it in a collective, before the
    /// job fails naming it (default: RINGDET_STALL_TIMEOUT, else 20).
    #[arg(
        long = "stall_timeout",
        alias = "stall-timeout",
        value_name = "SECONDS"
    )]
    pub stall_timeout: Option<f64>,

    /// Ranks whose output is echoed on this console: `all` or global ranks `0,3`
    /// (default: this host's first worker, so rank 0 on the first host).
    #[arg(long = "show_ranks", alias = "show-ranks", value_name = "all|R,R,..")]
    pub show_ranks: Option<String>,

    /// Print the rank information this process sees (RINGDET_*, PADDLE_*, torchrun or Slurm
    /// variables) and exit: what a worker would read.
    #[arg(long = "print_worker_env", alias = "print-worker-env")]
    pub print_worker_env: bool,

    /// The worker: a ringdet subcommand with its arguments, or `-- program args...`.
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}
