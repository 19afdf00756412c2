//! A minimal tensor crate.
