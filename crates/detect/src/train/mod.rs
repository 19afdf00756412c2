//! Training recipe pieces: LR schedule, weight-decay mask, optimizers, model EMA.

pub mod adamw;
pub mod decay;
pub mod ema;
pub mod lr;
pub mod optimizer;
pub mod sgd;
