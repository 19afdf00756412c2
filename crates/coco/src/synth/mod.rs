//! Synthetic shapes dataset (placeholder filled below).
