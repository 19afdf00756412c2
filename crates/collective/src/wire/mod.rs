//! The wire protocol: frame headers and the authenticated handshake. Nothing here knows about
//! rings or reductions.

pub mod frame;
pub mod handshake;
