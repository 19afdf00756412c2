//! `ringdet info`: what this machine offers ringdet.

/// Arguments of `ringdet info` (none yet).
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    println!("ringdet {}", env!("CARGO_PKG_VERSION"));
    println!(
        "cpu threads: {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    Ok(())
}
