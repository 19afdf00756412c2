//! The context of one running collective (kind, number, deadlines, abort flag). It has a module of
//! its own so that `control` (header checks, abort reports) can take it without importing the
//! `engine` that calls those checks.

use crate::wire::frame::Kind;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// What the engine, the duplex path and the header checks need to know about the running
/// collective.
pub struct OpCtx<'a> {
    /// Kind carried in every frame header.
    pub kind: Kind,
    /// Collective number (same on all ranks).
    pub op_id: u64,
    /// `all_reduce #12`, for errors.
    pub name: String,
    /// Longest time without progress before giving up.
    pub timeout: Duration,
    /// How long to keep polling without blocking after the last progress.
    pub spin: Duration,
    /// Largest payload a frame may announce.
    pub max_frame: u32,
    /// Set by `abort()`.
    pub aborted: &'a AtomicBool,
}
