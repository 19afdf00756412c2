//! `ringdet info`: what this machine offers ringdet — CPU threads, the NVRTC library and the CUDA
//! devices it would use — so a user sees at once why the GPU path is or is not available.

use ringdet_kernels::runtime::{KernelRuntime, cache_dir, nvrtc_version};

/// Arguments of `ringdet info` (none).
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    println!("ringdet {}", env!("CARGO_PKG_VERSION"));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("cpu threads:   {threads}");
    match nvrtc_version() {
        Ok((major, minor)) => println!("nvrtc:         {major}.{minor}"),
        Err(e) => println!("nvrtc:         none ({e})"),
    }
    println!("kernel cache:  {}", cache_dir().display());
    match ringdet_kernels::runtime::probe::device_count() {
        Ok(0) => println!("cuda devices:  none visible"),
        Ok(n) => {
            println!("cuda devices:  {n}");
            for i in 0..n {
                match KernelRuntime::get(i) {
                    Ok(rt) => println!(
                        "  cuda:{i}  {}  (kernels compiled for {})",
                        rt.device_name().unwrap_or_else(|e| e.to_string()),
                        rt.options().arch
                    ),
                    Err(e) => println!("  cuda:{i}  unusable: {e}"),
                }
            }
        }
        Err(e) => println!("cuda devices:  none ({e})"),
    }
    Ok(())
}
