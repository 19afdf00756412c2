//! Writes the PTX of every embedded kernel source, compiled by NVRTC as the runtime compiles it
//! for compute capability `major.minor` (default 9.0), into a folder: the input of
//! `scripts/ptxas-report.sh`. Needs NVRTC, not a GPU.
//!
//! `cargo run -p ringdet-kernels --example dump_ptx -- <out-dir> [major minor]`

use ringdet_kernels::runtime::{CompileOptions, all_sources, compile_ptx};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = std::path::PathBuf::from(
        args.first()
            .ok_or("usage: dump_ptx <out-dir> [major minor]")?,
    );
    let major: i32 = args.get(1).map_or(Ok(9), |s| s.parse())?;
    let minor: i32 = args.get(2).map_or(Ok(0), |s| s.parse())?;
    std::fs::create_dir_all(&out)?;
    let opts = CompileOptions::for_capability(major, minor);
    for src in all_sources() {
        let ptx = compile_ptx(src, &opts)?;
        let file = out.join(format!(
            "{}.ptx",
            src.name.trim_end_matches(".cu").replace('/', "__")
        ));
        std::fs::write(&file, ptx)?;
        println!("{}", file.display());
    }
    Ok(())
}
