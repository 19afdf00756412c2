//! One module per subcommand, each with its clap `Args` and a `run` function.

pub mod coco_eval;
pub mod info;
pub mod make_dataset;
