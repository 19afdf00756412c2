//! Training recipe pieces: LR schedule, weight-decay mask, model EMA.

pub mod decay;
pub mod ema;
pub mod lr;
pub mod sgd;
