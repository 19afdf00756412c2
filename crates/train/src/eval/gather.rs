//! Detections across ranks: each row travels as 7 `i64`s (image id, category id, and the bit
//! patterns of `x, y, w, h, score`), so rank 0 receives exactly the values each rank computed.

use ringdet_coco::DetectionRecord;
use ringdet_collective::{AsyncCommunicator, CommError, Communicator};

use super::EvalError;

/// The two collectives evaluation uses, so that [`super::evaluate`] takes a blocking
/// [`Communicator`] or the trainer's [`AsyncCommunicator`] (whose queue runs them in order
/// after the buckets already submitted).
pub trait EvalComm {
    /// This rank.
    fn rank(&self) -> usize;
    /// Ranks in the job.
    fn world_size(&self) -> usize;
    /// Every rank's `mine` (lengths may differ), in rank order.
    fn all_gather_i64(&mut self, mine: &[i64]) -> Result<Vec<Vec<i64>>, CommError>;
    /// `data` from `root` to every rank.
    fn broadcast_f64(&mut self, data: &mut [f64], root: usize) -> Result<(), CommError>;
}

impl EvalComm for Communicator {
    fn rank(&self) -> usize {
        Communicator::rank(self)
    }
    fn world_size(&self) -> usize {
        Communicator::world_size(self)
    }
    fn all_gather_i64(&mut self, mine: &[i64]) -> Result<Vec<Vec<i64>>, CommError> {
        self.all_gather(mine)
    }
    fn broadcast_f64(&mut self, data: &mut [f64], root: usize) -> Result<(), CommError> {
        self.broadcast(data, root)
    }
}

impl EvalComm for AsyncCommunicator {
    fn rank(&self) -> usize {
        AsyncCommunicator::rank(self)
    }
    fn world_size(&self) -> usize {
        AsyncCommunicator::world_size(self)
    }
    fn all_gather_i64(&mut self, mine: &[i64]) -> Result<Vec<Vec<i64>>, CommError> {
        let mine = mine.to_vec();
        self.run(move |c| c.all_gather(&mine)).wait()
    }
    fn broadcast_f64(&mut self, data: &mut [f64], root: usize) -> Result<(), CommError> {
        let mut owned = data.to_vec();
        owned = self
            .run(move |c| c.broadcast(&mut owned, root).map(|()| owned))
            .wait()?;
        data.copy_from_slice(&owned);
        Ok(())
    }
}

/// Values per detection row on the wire.
const ROW: usize = 7;

fn encode(detections: &[DetectionRecord]) -> Vec<i64> {
    let mut out = Vec::with_capacity(detections.len() * ROW);
    for d in detections {
        out.extend_from_slice(&[d.image_id, d.category_id]);
        out.extend(d.bbox.iter().map(|v| v.to_bits() as i64));
        out.push(d.score.to_bits() as i64);
    }
    out
}

fn decode(rank: usize, values: &[i64]) -> Result<Vec<DetectionRecord>, EvalError> {
    if !values.len().is_multiple_of(ROW) {
        return Err(EvalError::Rows {
            rank,
            len: values.len(),
            row: ROW,
        });
    }
    let f = |v: i64| f64::from_bits(v as u64);
    Ok(values
        .chunks_exact(ROW)
        .map(|r| DetectionRecord {
            image_id: r[0],
            category_id: r[1],
            bbox: [f(r[2]), f(r[3]), f(r[4]), f(r[5])],
            score: f(r[6]),
        })
        .collect())
}

/// All ranks' detections, in rank order, on every rank (the ring all-gather gives every rank
/// the whole list; only rank 0 uses it).
pub(super) fn gather_detections(
    comm: &mut dyn EvalComm,
    mine: &[DetectionRecord],
) -> Result<Vec<DetectionRecord>, EvalError> {
    let rank = comm.rank();
    let parts = comm
        .all_gather_i64(&encode(mine))
        .map_err(|source| EvalError::Comm {
            rank,
            what: "gathering the detections",
            source,
        })?;
    let mut all = Vec::new();
    for (from, part) in parts.iter().enumerate() {
        all.extend(decode(from, part)?);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_bit_for_bit() {
        let d = vec![
            DetectionRecord {
                image_id: 7,
                category_id: 3,
                bbox: [0.1, -2.5, 1e-30, f64::from(3.3f32)],
                score: 0.123_456_789,
            },
            DetectionRecord {
                image_id: i64::MAX,
                category_id: -1,
                bbox: [0.0; 4],
                score: 1.0,
            },
        ];
        assert_eq!(decode(0, &encode(&d)).unwrap(), d);
        assert!(matches!(
            decode(2, &[1, 2, 3]),
            Err(EvalError::Rows { rank: 2, .. })
        ));
    }
}
