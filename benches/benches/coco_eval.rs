//! COCO bbox evaluation (evaluate + accumulate) on the speed case of issue 4: 5000 images, 80
//! categories, 36k ground-truth boxes, 500k detections (100 per image); plus parsing that results
//! list from JSON. The data are generated here with a seeded RNG, shaped like
//! `crates/coco/tools/make_eval_perf_case.py` (jittered copies of the GT and background boxes).

use criterion::Criterion;
use ringdet_coco::json::{
    Annotation, Category, DetectionRecord, ImageRecord, Instances, detections_from_slice,
    write_detections,
};
use ringdet_coco::{UnknownImages, evaluate};
use std::hint::black_box;
use std::time::Duration;

/// splitmix64: a small seeded generator, enough for benchmark data.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn speed_case() -> (Instances, Vec<DetectionRecord>) {
    let mut rng = Rng(4);
    let cat_ids: Vec<i64> = (1..=90)
        .filter(|c| ![12, 26, 29, 30, 45, 66, 68, 69, 71, 83].contains(c))
        .collect();
    let images: Vec<ImageRecord> = (0..5000)
        .map(|i| ImageRecord {
            id: 1 + i * 97 + rng.below(90) as i64,
            width: 640,
            height: 480,
            file_name: format!("{i:012}.jpg"),
        })
        .collect();
    let mut annotations = Vec::with_capacity(36_000);
    for n in 0..36_000 {
        let image = &images[rng.below(images.len())];
        let (w, h) = (
            rng.uniform(6f64.ln(), 400f64.ln()).exp(),
            rng.uniform(6f64.ln(), 400f64.ln()).exp(),
        );
        let (w, h) = (w.min(639.0), h.min(479.0));
        let (x, y) = (rng.uniform(0.0, 640.0 - w), rng.uniform(0.0, 480.0 - h));
        annotations.push(Annotation {
            id: n + 1,
            image_id: image.id,
            category_id: cat_ids[rng.below(cat_ids.len())],
            bbox: [x, y, w, h].map(round2),
            area: round2(w * h * rng.uniform(0.4, 0.9)),
            iscrowd: rng.below(100) == 0,
            ignore: false,
        });
    }
    let mut by_image: Vec<Vec<&Annotation>> = vec![Vec::new(); images.len()];
    let index_of = |id: i64| images.binary_search_by_key(&id, |im| im.id).unwrap_or(0);
    for a in &annotations {
        by_image[index_of(a.image_id)].push(a);
    }
    let mut detections = Vec::with_capacity(500_000);
    for (image, gts) in images.iter().zip(&by_image) {
        let start = detections.len();
        for g in gts {
            for _ in 0..1 + rng.below(3) {
                let j = |rng: &mut Rng, s: f64| rng.uniform(-0.15, 0.15) * s;
                let [x, y, w, h] = g.bbox;
                let category_id = if rng.below(5) > 0 {
                    g.category_id
                } else {
                    cat_ids[rng.below(80)]
                };
                detections.push(DetectionRecord {
                    image_id: image.id,
                    category_id,
                    bbox: [
                        x + j(&mut rng, w),
                        y + j(&mut rng, h),
                        (w + j(&mut rng, w)).max(1.0),
                        (h + j(&mut rng, h)).max(1.0),
                    ]
                    .map(round2),
                    score: (rng.uniform(0.3, 1.0) * 1e5).round() / 1e5,
                });
            }
        }
        while detections.len() < start + 100 {
            let category_id = if !gts.is_empty() && rng.below(2) == 0 {
                gts[rng.below(gts.len())].category_id
            } else {
                cat_ids[rng.below(80)]
            };
            let (w, h) = (
                rng.uniform(4f64.ln(), 300f64.ln()).exp(),
                rng.uniform(4f64.ln(), 300f64.ln()).exp(),
            );
            let s = rng.uniform(0.0, 0.5);
            detections.push(DetectionRecord {
                image_id: image.id,
                category_id,
                bbox: [rng.uniform(0.0, 640.0), rng.uniform(0.0, 480.0), w, h].map(round2),
                score: (s * s * 1e5).round() / 1e5,
            });
        }
        detections.truncate(start + 100);
    }
    let categories = cat_ids
        .iter()
        .map(|&id| Category {
            id,
            name: format!("class_{id}"),
            supercategory: "thing".into(),
        })
        .collect();
    (
        Instances {
            images,
            annotations,
            categories,
        },
        detections,
    )
}

fn coco_eval(c: &mut Criterion) {
    let (gt, detections) = speed_case();
    let mut group = c.benchmark_group("coco_eval");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("evaluate_accumulate_5000img_500k_det", |b| {
        b.iter(|| {
            let eval =
                evaluate(black_box(&gt), black_box(&detections), UnknownImages::Error).unwrap();
            black_box(eval.stats())
        })
    });
    let mut json = Vec::new();
    write_detections(&mut json, &detections).unwrap();
    group.bench_function("parse_results_json_500k_det", |b| {
        b.iter(|| {
            detections_from_slice(black_box(&json), "dt.json")
                .unwrap()
                .len()
        })
    });
    group.finish();
}

// What `criterion_group!`/`criterion_main!` expand to, without the undocumented `pub fn` the
// group macro defines (the workspace warns on missing docs).
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    coco_eval(&mut criterion);
    criterion.final_summary();
}
