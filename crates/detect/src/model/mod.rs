//! The PP-YOLOE network on the CPU kernels, llm.c style: explicit forward passes that return caches,
//! explicit backward passes that accumulate into the flat gradient buffer.

pub mod backbone;
pub mod blocks;
pub mod conv_bn;
pub mod ctx;
pub mod feat;
pub mod head;
pub mod neck;
pub mod norm;
pub mod ops;

pub use ctx::{Bwd, Fwd};
pub use feat::Feat;
pub use head::LevelLogits;
