//! `ringdet launch`: the fleetrun-compatible launcher (the work is in the `ringdet_launch`
//! library); this layer checks what only the binary can before any rank starts (a ringdet
//! worker's arguments, `--gpus` against the CUDA devices), prints the outcome and exits with its
//! code.

use clap::Parser;
use ringdet_collective::worker_env;
use ringdet_launch::devices::{self, check_visible, local_devices};
use ringdet_launch::plan::worker_command;
use ringdet_launch::{LaunchFlags, Outcome};

/// Set to `1` to start `--gpus` workers without checking that CUDA shows those GPUs (testing the
/// launcher on a machine without them).
const SKIP_GPU_CHECK: &str = "RINGDET_SKIP_GPU_CHECK";

/// `ringdet launch [options] <ringdet subcommand ...>` or `ringdet launch [options] -- <program ...>`.
#[derive(clap::Args)]
#[command(after_help = "Run the same command on every host. See docs/launch.md.")]
pub struct Args {
    // Boxed: the flags are large next to the other subcommands' arguments.
    #[command(flatten)]
    flags: Box<LaunchFlags>,
}

/// Runs the launcher and exits with its code: 0 when every worker on every host succeeded, else
/// the root-cause worker's code (128 + signal when it was killed).
pub fn run(args: Args) -> anyhow::Result<()> {
    let args = *args.flags;
    if args.print_worker_env {
        return print_worker_env();
    }
    let raw: Vec<String> = std::env::args().collect();
    check_worker_args(&args, &raw)?;
    check_gpus(&args)?;
    let outcome = ringdet_launch::launch(args, &raw)?;
    std::process::exit(report(&outcome));
}

/// A ringdet subcommand as the worker is parsed here, once, so that a bad flag is reported by
/// the launcher (with clap's usage, exit code 2) instead of by every rank after the job started.
fn check_worker_args(flags: &LaunchFlags, raw: &[String]) -> anyhow::Result<()> {
    let worker = worker_command(&flags.command, raw)?;
    let this_binary = std::env::current_exe()?;
    if std::path::Path::new(&worker.program) != this_binary {
        return Ok(());
    }
    let argv = std::iter::once("ringdet").chain(worker.args.iter().map(String::as_str));
    if let Err(e) = crate::Cli::try_parse_from(argv) {
        e.exit();
    }
    Ok(())
}

/// `--gpus` on a machine whose CUDA driver does not show those GPUs is refused, naming them.
fn check_gpus(flags: &LaunchFlags) -> anyhow::Result<()> {
    if flags.gpus.is_none() || std::env::var(SKIP_GPU_CHECK).is_ok_and(|v| v == "1") {
        return Ok(());
    }
    let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    let wanted = local_devices(
        flags.gpus.as_deref(),
        flags.nproc_per_node,
        visible.as_deref(),
        devices::driver_gpu_count(),
    )?;
    let count = ringdet_kernels::runtime::probe::device_count().map_err(|e| e.to_string());
    check_visible(&wanted, count)?;
    Ok(())
}

/// Prints how the job ended on stderr (the root cause with its log tail, or success) and
/// returns the exit code.
pub fn report(outcome: &Outcome) -> i32 {
    match &outcome.root_cause {
        Some(failure) => eprint!("{}", failure.report()),
        None if outcome.code == 0 => {
            eprintln!("ringdet launch: all workers finished successfully")
        }
        // The job did not start; the launcher has said why.
        None => {}
    }
    outcome.code
}

/// `--print_worker_env`: what a worker started here would read.
fn print_worker_env() -> anyhow::Result<()> {
    match worker_env::from_env()? {
        None => println!("no rank variables (RINGDET_*, PADDLE_*, torchrun or Slurm) are set"),
        Some(env) => {
            println!("source: {:?}", env.source);
            println!("rank: {}", env.rank);
            println!("world_size: {}", env.world_size);
            println!("local_rank: {}", env.local_rank);
            println!("local_world_size: {}", env.local_world_size);
            println!(
                "endpoints: {}",
                env.endpoints
                    .map(|e| e.join(","))
                    .unwrap_or_else(|| "-".into())
            );
            println!("master: {}", env.master.unwrap_or_else(|| "-".into()));
            println!(
                "job_token: {}",
                if env.job_token.is_some() {
                    "set"
                } else {
                    "not set"
                }
            );
        }
    }
    Ok(())
}
