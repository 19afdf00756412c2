//! The trainer's communication schedule for one step, without the model: the gradient buckets of
//! the trainer's own planner ([`BucketPlan`] over the detector's [`ParamLayout`]) and, for each,
//! the fraction of backward compute done when its last gradient becomes final.
//!
//! **The step-trace model.** Backward visits the layers in reverse execution order, which is the
//! order of the flat gradient buffer, and a bucket is final once backward has passed the last
//! (highest-offset) tensor in it. A tensor's share of backward compute is taken as proportional
//! to its forward multiply-adds, `numel × output pixels` (a conv's weight gradient and input
//! gradient each cost about its forward), with the output pixels `(input / stride)²` at the
//! stride the layer runs at (read from its name: stem 2, backbone stage *i* 4·2^i, neck and head
//! level *i* 32/2^i, ESE attention 1×1 on pooled features). BN scales and biases count with their
//! channels times pixels (elementwise, small). The loss, the assigner and the activations'
//! elementwise backward are not attributed to layers: they are spread in proportion.

use std::ops::Range;

use ringdet_detect::arch::{Arch, TensorKind};
use ringdet_detect::layout::ParamLayout;
use ringdet_train::trainer::BucketPlan;

/// One bucket of the schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    /// Element range in the flat gradient buffer.
    pub range: Range<usize>,
    /// Fraction of backward compute done when the bucket is final (0..=1, increasing).
    pub release: f64,
}

/// The buckets of one step in the order backward finishes them.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// Buckets in buffer order, which is backward order.
    pub buckets: Vec<Bucket>,
    /// Trainable parameters (elements of the gradient buffer).
    pub num_params: usize,
}

/// The stride a tensor's layer runs at (output pixels per side = input / stride); 0 for a
/// layer on pooled 1×1 features.
pub fn stride_of(name: &str) -> Option<usize> {
    if name.contains(".attn.fc.") || (name.starts_with("yolo_head.stem_") && name.contains(".fc."))
    {
        return Some(0);
    }
    let level = |prefix: &str| -> Option<usize> {
        let rest = name.strip_prefix(prefix)?;
        rest.split('.').next()?.parse::<usize>().ok()
    };
    if name.starts_with("backbone.stem.") {
        return Some(2);
    }
    if let Some(i) = level("backbone.stages.") {
        return Some(4 << i);
    }
    for prefix in [
        "neck.fpn_stages.",
        "neck.fpn_routes.",
        "neck.pan_stages.",
        "neck.pan_routes.",
        "yolo_head.stem_cls.",
        "yolo_head.stem_reg.",
        "yolo_head.pred_cls.",
        "yolo_head.pred_reg.",
    ] {
        if let Some(i) = level(prefix) {
            return Some(32 >> i.min(5));
        }
    }
    None
}

/// Relative backward cost of a tensor at `input` pixels per side (see the module documentation).
pub fn cost(name: &str, numel: usize, input: usize) -> f64 {
    let pixels = match stride_of(name) {
        Some(0) => 1.0,
        Some(s) => ((input / s.max(1)) as f64).powi(2),
        // Unknown layer: counted at the head's finest level (never seen for PP-YOLOE).
        None => ((input / 8) as f64).powi(2),
    };
    numel as f64 * pixels
}

impl Schedule {
    /// The schedule of `arch` at `input` pixels per side with the trainer's bucket sizes.
    pub fn new(
        arch: &Arch,
        input: usize,
        first_bucket_bytes: usize,
        bucket_bytes: usize,
    ) -> ringdet_detect::Result<Schedule> {
        let layout = ParamLayout::new(arch)?;
        let plan = BucketPlan::new(&layout, first_bucket_bytes, bucket_bytes);
        // (end offset, cumulative cost up to and including the tensor), buffer order.
        let mut ends = Vec::new();
        let mut total = 0.0;
        let mut params: Vec<_> = layout
            .slots()
            .iter()
            .filter(|s| s.spec.kind == TensorKind::Param)
            .collect();
        params.sort_by_key(|s| s.offset);
        for s in params {
            total += cost(&s.spec.name, s.spec.numel(), input);
            ends.push((s.range().end, total));
        }
        let total = total.max(f64::MIN_POSITIVE);
        let buckets = plan
            .ranges()
            .iter()
            .map(|r| {
                let done = ends
                    .iter()
                    .take_while(|(end, _)| *end <= r.end)
                    .last()
                    .map_or(0.0, |(_, c)| *c);
                Bucket {
                    range: r.clone(),
                    release: (done / total).clamp(0.0, 1.0),
                }
            })
            .collect();
        Ok(Schedule {
            buckets,
            num_params: layout.num_params(),
        })
    }

    /// Bytes of every bucket at `elem` bytes per gradient value.
    pub fn bytes(&self, elem: usize) -> Vec<usize> {
        self.buckets.iter().map(|b| b.range.len() * elem).collect()
    }
}

/// Times of one simulated step on one host (an 8-GPU machine), in seconds of the simulation's
/// clock (the nominal times multiplied by the slowdown).
#[derive(Clone, Debug, PartialEq)]
pub struct StepTimes {
    /// Forward compute.
    pub forward: f64,
    /// Backward compute.
    pub backward: f64,
    /// Each bucket's release, from the start of backward.
    pub releases: Vec<f64>,
    /// The modelled intra-host reduction of each bucket before it goes on the network.
    pub intra: Vec<f64>,
}

/// The intra-host part of the model: `gpus` GPUs reduce a bucket with a ring at `bandwidth`
/// bytes/s per GPU link, `2 (g − 1) / g × bytes / bandwidth` seconds.
pub fn intra_host_seconds(bytes: usize, gpus: usize, bandwidth: f64) -> f64 {
    if gpus < 2 || bandwidth <= 0.0 {
        return 0.0;
    }
    2.0 * (gpus - 1) as f64 / gpus as f64 * bytes as f64 / bandwidth
}

/// The inputs of [`StepTimes::new`], nominal (unslowed) values.
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    /// Step compute in seconds (forward + backward).
    pub step: f64,
    /// Forward's share of it (backward gets the rest).
    pub forward_share: f64,
    /// GPUs per host.
    pub gpus: usize,
    /// Intra-host bandwidth in bytes/s.
    pub intra_bandwidth: f64,
    /// Factor on every compute and intra-host time (the link rate is divided by it outside).
    pub slowdown: f64,
}

impl StepTimes {
    /// The waits of one step for `schedule` with gradients of `elem` bytes.
    pub fn new(schedule: &Schedule, timing: &Timing, elem: usize) -> StepTimes {
        let k = timing.slowdown;
        let forward = timing.step * timing.forward_share * k;
        let backward = timing.step * (1.0 - timing.forward_share) * k;
        StepTimes {
            forward,
            backward,
            releases: schedule
                .buckets
                .iter()
                .map(|b| b.release * backward)
                .collect(),
            intra: schedule
                .bytes(elem)
                .into_iter()
                .map(|n| intra_host_seconds(n, timing.gpus, timing.intra_bandwidth) * k)
                .collect(),
        }
    }
}

/// The step time the model predicts for an ideal ring, in the clock of `times`: buckets go out
/// in order, one at a time, each after its release (or after backward without `overlap`), taking
/// its intra-host time plus `2 (h − 1) / h × bytes / link` on the network (`link` in bytes/s of
/// that clock), and the step ends when backward and the last bucket are both done. The replay's
/// measured step is compared with it (the difference is what the emulated network and the
/// loaded cores add).
pub fn ideal_step(
    times: &StepTimes,
    bytes: &[usize],
    hosts: usize,
    link: f64,
    overlap: bool,
) -> f64 {
    let mut t: f64 = 0.0;
    let ring = if hosts > 1 && link > 0.0 {
        2.0 * (hosts - 1) as f64 / hosts as f64 / link
    } else {
        0.0
    };
    for ((release, intra), n) in times.releases.iter().zip(&times.intra).zip(bytes) {
        let ready = if overlap { *release } else { times.backward };
        t = t.max(ready) + intra + ring * *n as f64;
    }
    times.forward + t.max(times.backward)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringdet_detect::arch::ModelConfig;

    fn s_model() -> Arch {
        Arch::new(ModelConfig::new(0.5, 0.33).with_classes(80)).unwrap()
    }

    #[test]
    fn buckets_cover_the_parameter_bytes_in_backward_order() {
        let arch = s_model();
        let s = Schedule::new(&arch, 640, 1 << 20, 25 << 20).unwrap();
        let layout = ParamLayout::new(&arch).unwrap();
        assert_eq!(s.num_params, layout.num_params());
        // The buckets tile the buffer front to back: the sizes sum to the parameter bytes.
        assert_eq!(s.bytes(4).iter().sum::<usize>(), 4 * layout.num_params());
        assert_eq!(s.bytes(2).iter().sum::<usize>(), 2 * layout.num_params());
        let mut at = 0;
        for b in &s.buckets {
            assert_eq!(b.range.start, at);
            at = b.range.end;
        }
        assert_eq!(at, layout.num_params());
        // The first bucket is about 1 MiB (it closes at a tensor's end), the others 25 MiB.
        let bytes = s.bytes(4);
        assert!(bytes[0] >= 1 << 20 && bytes[0] < 8 << 20, "{bytes:?}");
        assert!(bytes.len() >= 2, "{bytes:?}");
        // Release order = buffer order = backward order: fractions increase, the last is 1.
        for w in s.buckets.windows(2) {
            assert!(w[0].release < w[1].release, "{:?}", s.buckets);
        }
        assert!((s.buckets.last().unwrap().release - 1.0).abs() < 1e-12);
        assert!(s.buckets[0].release > 0.0);
        // The same plan as the trainer's own planner.
        let plan = BucketPlan::new(&layout, 1 << 20, 25 << 20);
        let ranges: Vec<_> = s.buckets.iter().map(|b| b.range.clone()).collect();
        assert_eq!(ranges, plan.ranges());
    }

    #[test]
    fn the_head_finishes_first_and_the_stem_last() {
        // The buffer starts with the last layers forward ran: the head's predictions.
        let arch = s_model();
        let layout = ParamLayout::new(&arch).unwrap();
        let first = layout
            .slots()
            .iter()
            .filter(|s| s.spec.kind == TensorKind::Param)
            .min_by_key(|s| s.offset)
            .unwrap();
        assert!(
            first.spec.name.starts_with("yolo_head."),
            "{}",
            first.spec.name
        );
        // Every trainable tensor has a known stride (the frozen DFL projection has none).
        for s in layout.slots() {
            if s.spec.kind == TensorKind::Param {
                assert!(stride_of(&s.spec.name).is_some(), "{}", s.spec.name);
            }
        }
        assert_eq!(
            stride_of("backbone.stages.2.conv_down.conv.weight"),
            Some(16)
        );
        assert_eq!(stride_of("neck.pan_routes.1.conv.weight"), Some(16));
        assert_eq!(stride_of("yolo_head.pred_cls.2.weight"), Some(8));
        assert_eq!(stride_of("yolo_head.stem_cls.0.fc.weight"), Some(0));
    }

    #[test]
    fn slowdown_scales_every_wait_alike() {
        let s = Schedule::new(&s_model(), 640, 1 << 20, 25 << 20).unwrap();
        let t = Timing {
            step: 0.26,
            forward_share: 1.0 / 3.0,
            gpus: 8,
            intra_bandwidth: 100e9,
            slowdown: 1.0,
        };
        let one = StepTimes::new(&s, &t, 4);
        let k = 7.0;
        let slow = StepTimes::new(
            &s,
            &Timing {
                slowdown: k,
                ..t.clone()
            },
            4,
        );
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
        assert!(close(slow.forward, one.forward * k));
        assert!(close(slow.backward, one.backward * k));
        assert!(close(one.forward + one.backward, 0.26));
        for (a, b) in one.releases.iter().zip(&slow.releases) {
            assert!(close(*b, a * k));
        }
        for (a, b) in one.intra.iter().zip(&slow.intra) {
            assert!(close(*b, a * k));
        }
        // bf16 halves the bytes and so the intra-host time.
        let half = StepTimes::new(&s, &t, 2);
        for (a, b) in one.intra.iter().zip(&half.intra) {
            assert!(close(*b * 2.0, *a));
        }
        assert_eq!(intra_host_seconds(1 << 20, 1, 1e9), 0.0);
        // The ideal step scales with the slowdown when the link is slowed by the same factor.
        let bytes = s.bytes(4);
        let link = 10e9 / 8.0;
        for hosts in [1, 2, 4, 8] {
            for overlap in [true, false] {
                let a = ideal_step(&one, &bytes, hosts, link, overlap);
                let b = ideal_step(&slow, &bytes, hosts, link / k, overlap);
                assert!(close(b, a * k), "{hosts} {overlap}: {a} {b}");
                assert!(a >= 0.26 - 1e-12);
                assert!(ideal_step(&one, &bytes, hosts, link, false) >= a - 1e-12);
            }
        }
    }
}
