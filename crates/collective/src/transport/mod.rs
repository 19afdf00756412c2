//! Byte streams between ranks: TCP sockets (or in-memory socket pairs in tests), set up for
//! low latency, and a `poll(2)` wrapper so one thread can send and receive at the same time.

pub mod link;
pub mod poll;
pub mod tcp;

pub use link::Link;
