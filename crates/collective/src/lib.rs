//! Collective communication over raw TCP for data-parallel trainers.
