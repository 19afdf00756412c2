//! `--check_replicas N`: every N steps each rank hashes its parameters, optimizer state (velocity or moments) and (with
//! SyncBN) BN statistics, the hashes are all-gathered, and a difference stops every rank (they all see the
//! same table, so they all stop with the same error) naming the step and the rank(s) that
//! differ. Data parallelism keeps the replicas identical only if every rank applies the same
//! averaged gradient to the same weights; this catches a rank that drifted (a bug, a flipped
//! bit, a rank that skipped a bucket) where it happens rather than as a worse mAP later.

use ringdet_detect::state::ModelState;
use ringdet_detect::train::optimizer::Optimizer;

use super::{Replicas, TrainError};

/// What is hashed, in the order of the hash words.
const PARTS: [&str; 3] = ["parameters", "BN statistics", "optimizer state"];

/// FNV-1a over the bit patterns of `values`, one 32-bit word at a time: a change of any one
/// value changes the hash (each step is a bijection of the running state).
fn hash(values: &[f32]) -> u64 {
    values.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
        (h ^ u64::from(v.to_bits())).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// This rank's hashes of its parameters, BN statistics and optimizer state. `with_stats: false`
/// leaves the BN statistics out (hashed as nothing): with per-rank BN each rank's running
/// statistics are its own, as in PaddleDetection, and only the weights must agree.
pub fn replica_hashes(state: &ModelState, optimizer: &Optimizer, with_stats: bool) -> [u64; 3] {
    let stats: &[f32] = if with_stats { &state.stats } else { &[] };
    let moments = optimizer
        .state_buffers()
        .iter()
        .fold(0u64, |h, b| h.rotate_left(1) ^ hash(b));
    [hash(&state.params), hash(stats), moments]
}

/// All-gathers `mine` and compares: the ranks whose hashes differ from the largest group of
/// equal ones (ties go to the group holding the lowest rank) are named in the error.
pub fn check_replicas(replicas: &Replicas, mine: [u64; 3], step: usize) -> Result<(), TrainError> {
    let words: Vec<i64> = mine.iter().map(|&h| h as i64).collect();
    let all = replicas
        .all_gather_i64(&words)
        .map_err(|error| TrainError::Comm {
            rank: replicas.rank(),
            what: "comparing replica hashes",
            error,
        })?;
    compare(&all, step)
}

/// The check on an all-gathered table (one row of hash words per rank).
pub fn compare(all: &[Vec<i64>], step: usize) -> Result<(), TrainError> {
    let count = |row: &Vec<i64>| all.iter().filter(|r| *r == row).count();
    let Some(reference) =
        (0..all.len()).max_by(|&a, &b| count(&all[a]).cmp(&count(&all[b])).then_with(|| b.cmp(&a)))
    else {
        return Ok(());
    };
    let ranks: Vec<usize> = (0..all.len())
        .filter(|&r| all[r] != all[reference])
        .collect();
    if ranks.is_empty() {
        return Ok(());
    }
    let detail = ranks
        .iter()
        .map(|&r| {
            let parts: Vec<&str> = PARTS
                .iter()
                .enumerate()
                .filter(|(i, _)| all[r].get(*i) != all[reference].get(*i))
                .map(|(_, p)| *p)
                .collect();
            format!("rank {r} ({})", parts.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ");
    let detail = match ranks.len() {
        1 => format!("{detail} differs"),
        _ => format!("{detail} differ"),
    };
    Err(TrainError::ReplicasDiffer {
        step,
        ranks,
        reference,
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_odd_rank_and_the_part() {
        let same = vec![1i64, 2, 3];
        assert!(compare(&[same.clone(), same.clone()], 4).is_ok());
        let e = compare(
            &[same.clone(), same.clone(), vec![1, 2, 9], same.clone()],
            7,
        )
        .unwrap_err();
        let TrainError::ReplicasDiffer {
            step,
            ranks,
            reference,
            ..
        } = &e
        else {
            panic!("{e}")
        };
        assert_eq!((*step, ranks.as_slice(), *reference), (7, &[2usize][..], 0));
        assert!(e.to_string().contains("rank 2 (optimizer state)"), "{e}");
        // Two ranks that differ: rank 0 is the reference.
        let e = compare(&[same.clone(), vec![5, 2, 3]], 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("rank 1 (parameters) differs from rank 0"), "{e}");
        assert_ne!(hash(&[0.0]), hash(&[-0.0]));
    }
}
