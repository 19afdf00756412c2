//! Dense or hashed lookup from a sparse id (image id, category id) to its rank among the sorted ids.

use std::collections::HashMap;

/// Sorted unique ids and a fast id -> rank lookup.
pub(crate) struct IdIndex {
    pub(crate) sorted: Vec<i64>,
    lookup: Lookup,
}

enum Lookup {
    /// `table[id - min]` = rank, or `u32::MAX`.
    Dense {
        min: i64,
        table: Vec<u32>,
    },
    Hashed(HashMap<i64, u32>),
}

impl IdIndex {
    pub(crate) fn new(ids: impl Iterator<Item = i64>) -> Self {
        let mut sorted: Vec<i64> = ids.collect();
        sorted.sort_unstable();
        sorted.dedup();
        let lookup = match (sorted.first(), sorted.last()) {
            (Some(&min), Some(&max))
                if (max as i128 - min as i128) < (4 * sorted.len() as i128).max(1 << 22) =>
            {
                let mut table = vec![u32::MAX; (max - min + 1) as usize];
                for (rank, &id) in sorted.iter().enumerate() {
                    table[(id - min) as usize] = rank as u32;
                }
                Lookup::Dense { min, table }
            }
            _ => Lookup::Hashed(
                sorted
                    .iter()
                    .enumerate()
                    .map(|(rank, &id)| (id, rank as u32))
                    .collect(),
            ),
        };
        Self { sorted, lookup }
    }

    pub(crate) fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Rank of `id` among the sorted ids, or `None` when absent.
    #[inline]
    pub(crate) fn get(&self, id: i64) -> Option<usize> {
        match &self.lookup {
            Lookup::Dense { min, table } => {
                let offset = id.checked_sub(*min)?;
                let rank = *table.get(usize::try_from(offset).ok()?)?;
                (rank != u32::MAX).then_some(rank as usize)
            }
            Lookup::Hashed(map) => map.get(&id).map(|&r| r as usize),
        }
    }
}
