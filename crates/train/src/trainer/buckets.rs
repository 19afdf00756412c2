//! Gradient buckets all-reduced while backward runs, as PyTorch's DDP and Paddle's
//! `DataParallel` do, and the settings of the trainer's communication (config keys, also `-o`):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `bucket_mb` | 25 | bucket size in MiB (PyTorch's `bucket_cap_mb`, Paddle's `comm_buffer_size`) |
//! | `first_bucket_mb` | 1 | size of the first bucket, the one backward finishes first (Paddle's `last_comm_buffer_size`) |
//! | `overlap_grad_reduce` | true | `false`: queue every bucket only after backward ends (to compare the exposed time) |
//! | `sync_bn_on_cpu` | false | `norm_type: sync_bn` sums BN statistics across the CPU ranks (PaddleDetection converts to SyncBN only on GPUs) |
//! | `debug_perturb_step` | — | after that step's update the last rank adds 1e-3 to its first weight (tests `--check_replicas`) |
//!
//! A bucket is a contiguous range of the flat gradient buffer ending at a tensor boundary: the
//! parameters are laid out in reverse execution order, so backward finishes the buffer front to
//! back ([`ringdet_detect::grad_sink`]) and buckets fill in that order, closing once they hold at
//! least their size (one tensor larger than the size is a bucket of its own). Each full bucket is
//! queued on the communication thread at once ([`Replicas::submit_avg`]) while backward goes
//! on; after backward the trainer waits for them all, in order, and writes the averages back
//! before the optimizer step. The time of that wait is the step's exposed communication
//! (`comm_exposed` in `metrics.jsonl`). Without overlap the same buckets are queued after
//! backward, so both ways give the same gradients bit for bit.

use std::ops::Range;

use ringdet_collective::{CommError, Handle};
use ringdet_detect::grad_sink::GradSink;
use ringdet_detect::layout::ParamLayout;
use ringdet_detect::{DetectError, arch::TensorKind};
use serde_yaml_ng::Value;

use super::{Replicas, TrainError};
use crate::config::Config;

/// One MiB, the unit of `bucket_mb` (PyTorch's `bucket_cap_mb` means MiB too).
const MIB: f64 = 1024.0 * 1024.0;

/// The trainer's communication settings (the config keys in the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct CommSettings {
    /// Bytes per bucket after the first.
    pub bucket_bytes: usize,
    /// Bytes of the first bucket.
    pub first_bucket_bytes: usize,
    /// Queue each bucket as soon as backward finishes it.
    pub overlap: bool,
    /// Sum BN statistics across CPU ranks when the config asks for `sync_bn`.
    pub sync_bn_on_cpu: bool,
    /// The global step after whose update the last rank perturbs a weight.
    pub debug_perturb_step: Option<usize>,
}

impl Default for CommSettings {
    fn default() -> Self {
        CommSettings {
            bucket_bytes: (25.0 * MIB) as usize,
            first_bucket_bytes: MIB as usize,
            overlap: true,
            sync_bn_on_cpu: false,
            debug_perturb_step: None,
        }
    }
}

fn present<'c>(c: &'c Config, key: &str) -> Option<&'c Value> {
    c.get(key).filter(|v| !v.is_null())
}

fn mib(c: &Config, key: &str, default: usize) -> Result<usize, TrainError> {
    let Some(_) = present(c, key) else {
        return Ok(default);
    };
    let v = c.f64(key)?;
    if !(v.is_finite() && v > 0.0) {
        return Err(TrainError::Setting {
            key: key.into(),
            msg: format!("{v}: a bucket size in MiB must be a positive number"),
        });
    }
    Ok(((v * MIB) as usize).max(4))
}

impl CommSettings {
    /// Reads the keys from the merged config (defaults where absent).
    pub fn read(c: &Config) -> Result<CommSettings, TrainError> {
        let d = CommSettings::default();
        let flag = |key: &str, default: bool| -> Result<bool, TrainError> {
            match present(c, key) {
                None => Ok(default),
                Some(_) => Ok(c.bool(key)?),
            }
        };
        Ok(CommSettings {
            bucket_bytes: mib(c, "bucket_mb", d.bucket_bytes)?,
            first_bucket_bytes: mib(c, "first_bucket_mb", d.first_bucket_bytes)?,
            overlap: flag("overlap_grad_reduce", d.overlap)?,
            sync_bn_on_cpu: flag("sync_bn_on_cpu", d.sync_bn_on_cpu)?,
            debug_perturb_step: match present(c, "debug_perturb_step") {
                None => None,
                Some(_) => Some(c.usize("debug_perturb_step")?),
            },
        })
    }

    /// Whether BN statistics are summed across the ranks: only with several ranks, a config that
    /// asks for `sync_bn`, and `sync_bn_on_cpu` (these ranks are CPU ranks).
    pub fn sync_bn(&self, norm_type: &str, world: usize) -> bool {
        world > 1 && norm_type == "sync_bn" && self.sync_bn_on_cpu
    }

    /// The line rank 0 prints about BN with several ranks, `None` for one rank.
    pub fn bn_line(&self, norm_type: &str, world: usize) -> Option<String> {
        if world < 2 {
            return None;
        }
        Some(if self.sync_bn(norm_type, world) {
            format!(
                "norm_type: sync_bn: BN statistics are summed across the {world} ranks (SyncBN, \
                 forced on CPU ranks by sync_bn_on_cpu)"
            )
        } else if norm_type == "sync_bn" {
            format!(
                "norm_type: sync_bn: each of the {world} CPU ranks normalises with its own batch \
                 statistics (PaddleDetection converts to SyncBN only on GPUs; -o \
                 sync_bn_on_cpu=true sums them across the ranks)"
            )
        } else {
            format!("norm_type: {norm_type}: each of the {world} ranks keeps its own BN statistics")
        })
    }
}

/// Where the buckets of a flat gradient buffer begin and end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketPlan {
    ranges: Vec<Range<usize>>,
}

impl BucketPlan {
    /// Buckets over the parameters of `layout` in buffer order: the first closes once it holds
    /// `first_bytes`, the others `bytes`, each at a tensor's end.
    pub fn new(layout: &ParamLayout, first_bytes: usize, bytes: usize) -> BucketPlan {
        let ends = layout
            .slots()
            .iter()
            .filter(|s| s.spec.kind == TensorKind::Param)
            .map(|s| s.range().end);
        Self::from_tensor_ends(ends, layout.num_params(), first_bytes, bytes)
    }

    /// Buckets over a buffer of `len` f32 values whose tensors end at `ends` (increasing).
    pub fn from_tensor_ends(
        ends: impl IntoIterator<Item = usize>,
        len: usize,
        first_bytes: usize,
        bytes: usize,
    ) -> BucketPlan {
        let mut ranges = Vec::new();
        let mut start = 0;
        for end in ends {
            let cap = if ranges.is_empty() {
                first_bytes
            } else {
                bytes
            };
            if end > start && end <= len && (end - start) * 4 >= cap {
                ranges.push(start..end);
                start = end;
            }
        }
        if start < len {
            ranges.push(start..len);
        }
        BucketPlan { ranges }
    }

    /// The buckets, in buffer order (the order backward finishes them).
    pub fn ranges(&self) -> &[Range<usize>] {
        &self.ranges
    }

    /// How the plan reads in the startup line.
    pub fn describe(&self) -> String {
        let mb = |r: &Range<usize>| (r.len() * 4) as f64 / MIB;
        match self.ranges.as_slice() {
            [] => "no gradient buckets".into(),
            [one] => format!("1 bucket of {:.2} MiB", mb(one)),
            [first, rest @ ..] => format!(
                "{} buckets (first {:.2} MiB, then up to {:.2} MiB)",
                self.ranges.len(),
                mb(first),
                rest.iter().map(mb).fold(0.0, f64::max)
            ),
        }
    }
}

/// One step's gradient buckets: a [`GradSink`] that queues each bucket as backward fills it,
/// then [`GradReducer::finish`] waits for the averages and writes them back.
pub struct GradReducer<'r> {
    replicas: &'r Replicas,
    plan: &'r BucketPlan,
    overlap: bool,
    /// The bucket being filled.
    next: usize,
    /// Elements received so far.
    cursor: usize,
    fill: Vec<f32>,
    pending: Vec<(Range<usize>, Handle<Vec<f32>>)>,
}

impl<'r> GradReducer<'r> {
    /// Nothing queued yet; `overlap` as `overlap_grad_reduce`.
    pub fn new(replicas: &'r Replicas, plan: &'r BucketPlan, overlap: bool) -> GradReducer<'r> {
        GradReducer {
            replicas,
            plan,
            overlap,
            next: 0,
            cursor: 0,
            fill: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// The sink to hand to backward: this reducer when it overlaps and there are other ranks.
    pub fn sink(&mut self) -> Option<&mut dyn GradSink> {
        match self.overlap && self.replicas.world() > 1 {
            true => Some(self),
            false => None,
        }
    }

    /// Buckets queued so far.
    pub fn queued(&self) -> usize {
        self.pending.len()
    }

    /// After backward: queues what backward did not hand over (everything without overlap),
    /// waits for every bucket in order and writes the averages over the ranks into `grads`.
    pub fn finish(mut self, grads: &mut [f32]) -> Result<(), CommError> {
        if self.replicas.world() < 2 {
            return Ok(());
        }
        if self.cursor < grads.len() {
            let rest = &grads[self.cursor..];
            self.take(self.cursor, rest)
                .map_err(|e| CommError::Local(e.to_string()))?;
        }
        for (range, handle) in self.pending.drain(..) {
            let avg = handle.wait()?;
            let dst = grads
                .get_mut(range.clone())
                .filter(|d| d.len() == avg.len());
            let Some(dst) = dst else {
                return Err(CommError::Local(format!(
                    "gradient bucket {range:?}: {} values came back",
                    avg.len()
                )));
            };
            dst.copy_from_slice(&avg);
        }
        Ok(())
    }

    fn take(&mut self, offset: usize, mut grads: &[f32]) -> Result<(), DetectError> {
        if offset != self.cursor {
            return Err(DetectError::Input(format!(
                "gradient buckets: values from {offset} arrived, expected from {}",
                self.cursor
            )));
        }
        while !grads.is_empty() {
            let Some(bucket) = self.plan.ranges.get(self.next) else {
                return Err(DetectError::Input(format!(
                    "gradient buckets: {} values past the last bucket (ends at {})",
                    grads.len(),
                    self.cursor
                )));
            };
            let n = grads.len().min(bucket.end - self.cursor);
            self.fill.extend_from_slice(&grads[..n]);
            self.cursor += n;
            grads = &grads[n..];
            if self.cursor == bucket.end {
                let values = std::mem::take(&mut self.fill);
                if let Some(h) = self.replicas.submit_avg(values) {
                    self.pending.push((bucket.clone(), h));
                }
                self.next += 1;
            }
        }
        Ok(())
    }
}

/// Buckets still queued when the reducer goes without [`GradReducer::finish`] mean the step
/// failed on this rank mid-backward: the other ranks would wait for this rank's later buckets
/// until their deadline, and this rank's communication thread with them. Aborting the
/// communicator stops both at once, the others with an error naming this rank.
impl Drop for GradReducer<'_> {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            self.replicas.abort();
        }
    }
}

impl GradSink for GradReducer<'_> {
    fn ready(&mut self, offset: usize, grads: &[f32]) -> ringdet_detect::Result<()> {
        self.take(offset, grads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo(overrides: &[&str]) -> Result<CommSettings, TrainError> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../configs/demo/ppyoloe_shapes_demo.yml");
        let mut c = Config::load(&path).unwrap();
        c.apply_overrides(overrides).unwrap();
        CommSettings::read(&c)
    }

    #[test]
    fn settings_default_to_pytorch_and_paddle_and_read_overrides() {
        let d = demo(&[]).unwrap();
        assert_eq!(d, CommSettings::default());
        assert_eq!((d.first_bucket_bytes, d.bucket_bytes), (1 << 20, 25 << 20));
        assert!(d.overlap && !d.sync_bn_on_cpu);
        let o = demo(&[
            "bucket_mb=0.5",
            "first_bucket_mb=2",
            "overlap_grad_reduce=false",
            "sync_bn_on_cpu=true",
            "debug_perturb_step=3",
        ])
        .unwrap();
        assert_eq!((o.first_bucket_bytes, o.bucket_bytes), (2 << 20, 1 << 19));
        assert!(!o.overlap && o.sync_bn_on_cpu);
        assert_eq!(o.debug_perturb_step, Some(3));
        let e = demo(&["bucket_mb=0"]).unwrap_err().to_string();
        assert!(e.starts_with("bucket_mb: 0: "), "{e}");
        let e = demo(&["overlap_grad_reduce=sometimes"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("overlap_grad_reduce"), "{e}");
    }

    #[test]
    fn sync_bn_only_when_asked_forced_and_several_ranks() {
        let forced = CommSettings {
            sync_bn_on_cpu: true,
            ..CommSettings::default()
        };
        assert!(forced.sync_bn("sync_bn", 2));
        assert!(!forced.sync_bn("sync_bn", 1));
        assert!(!forced.sync_bn("bn", 2));
        assert!(!CommSettings::default().sync_bn("sync_bn", 8));
        assert!(CommSettings::default().bn_line("sync_bn", 1).is_none());
        let line = CommSettings::default().bn_line("sync_bn", 2).unwrap();
        assert!(line.contains("sync_bn_on_cpu=true"), "{line}");
    }

    #[test]
    fn buckets_close_at_tensor_ends_once_full() {
        // Tensors of 100, 200, 50, 1000, 10, 10 values (400, 800, 200, 4000, 40, 40 bytes).
        let ends = [100, 300, 350, 1350, 1360, 1370];
        let plan = BucketPlan::from_tensor_ends(ends, 1370, 1000, 2000);
        // First: 1000 bytes reached at the end of the second tensor; then the 4000-byte tensor
        // alone overshoots 2000; the rest is a last, smaller bucket.
        assert_eq!(plan.ranges(), &[0..300, 300..1350, 1350..1370]);
        let one = BucketPlan::from_tensor_ends(ends, 1370, 1 << 20, 25 << 20);
        assert_eq!(one.ranges().len(), 1);
        assert_eq!(one.ranges()[0], 0..1370);
        assert_eq!(one.describe(), "1 bucket of 0.01 MiB");
        assert_eq!(
            BucketPlan::from_tensor_ends([], 0, 4, 4).ranges(),
            &[] as &[Range<usize>]
        );
    }
}
