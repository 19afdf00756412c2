//! `ringdet launch`: the fleetrun-compatible launcher (the work is in the `ringdet_launch`
//! library); this layer prints the outcome and exits with its code.

use ringdet_collective::worker_env;
use ringdet_launch::{LaunchFlags, Outcome};

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
    let outcome = ringdet_launch::launch(args, &raw)?;
    std::process::exit(report(&outcome));
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
