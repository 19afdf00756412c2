//! One module per subcommand, each with its clap `Args` and a `run` function.

pub mod info;
pub mod parity;
pub mod perf_detect;
