//! COCO data pipeline: decode + PP-YOLOE train transforms on 640×480 JPEGs, one thread (images/s
//! per core), plus decode alone and the eval pipeline. The JPEGs are synthetic shapes scenes
//! (quality 90) with their boxes, so RandomCrop has objects to keep.
//!
//! Each case runs twice: `wall` is criterion's usual clock; `cpu` times the benchmark thread's own
//! CPU time (CLOCK_THREAD_CPUTIME_ID), which is what "per core" means on a machine shared with
//! other jobs, where wall time also counts the time other processes held the core.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use ringdet_coco::image::{decode_image, encode_jpeg};
use ringdet_coco::synth::render_scene_sized;
use ringdet_coco::transform::{
    AugRng, IMAGENET_MEAN, IMAGENET_STD, Sample, TrainSampleTransforms, draw_batch_resize,
    eval_resize, normalize_permute,
};

struct Jpeg {
    bytes: Vec<u8>,
    boxes: Vec<[f32; 4]>,
    classes: Vec<i32>,
}

fn jpegs() -> Vec<Jpeg> {
    (0..16)
        .map(|i| {
            let scene = render_scene_sized(1, 0, i, 640, 480);
            let bytes = encode_jpeg(480, 640, &scene.rgb, 90).expect("encode");
            let boxes = scene
                .objects
                .iter()
                .map(|o| {
                    [
                        o.bbox[0] as f32,
                        o.bbox[1] as f32,
                        (o.bbox[0] + o.bbox[2]) as f32,
                        (o.bbox[1] + o.bbox[3]) as f32,
                    ]
                })
                .collect();
            let classes = scene
                .objects
                .iter()
                .map(|o| o.shape.class_index() as i32)
                .collect();
            Jpeg {
                bytes,
                boxes,
                classes,
            }
        })
        .collect()
}

fn decode(j: &Jpeg) -> Sample {
    let image = decode_image(&j.bytes, Path::new("bench.jpg")).expect("decode");
    Sample::decoded(image, j.boxes.clone(), j.classes.clone(), 0)
}

fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Registers `run` (called with a counter) as `<name>/wall` and `<name>/cpu`.
fn both_clocks(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, mut run: impl FnMut(u64)) {
    let mut i = 0u64;
    g.bench_function(format!("{name}/wall"), |b| {
        b.iter(|| {
            i += 1;
            run(i)
        })
    });
    g.bench_function(format!("{name}/cpu"), |b| {
        b.iter_custom(|iters| {
            let start = thread_cpu_time();
            for _ in 0..iters {
                i += 1;
                run(i);
            }
            thread_cpu_time() - start
        })
    });
}

/// With `RINGDET_BENCH_JPEG_DIR` set, writes the bench's JPEGs and boxes there (`NN.jpg`,
/// `boxes.json`), so a peer pipeline can be timed on the very same files.
fn dump(files: &[Jpeg]) {
    let Some(dir) = std::env::var_os("RINGDET_BENCH_JPEG_DIR") else {
        return;
    };
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).expect("create RINGDET_BENCH_JPEG_DIR");
    let mut boxes = Vec::new();
    for (i, f) in files.iter().enumerate() {
        std::fs::write(dir.join(format!("{i:02}.jpg")), &f.bytes).expect("write jpeg");
        boxes.push(format!("{:?}", f.boxes));
    }
    std::fs::write(dir.join("boxes.json"), format!("[{}]", boxes.join(","))).expect("write boxes");
}

fn bench(c: &mut Criterion) {
    let files = jpegs();
    dump(&files);
    let transforms = TrainSampleTransforms::default();
    let mut g = c.benchmark_group("coco_data_640x480");
    g.throughput(Throughput::Elements(1));
    g.sample_size(30);
    both_clocks(&mut g, "decode", |i| {
        black_box(decode(&files[i as usize % files.len()]));
    });
    let mut out = Vec::new();
    both_clocks(&mut g, "decode+train_transforms", |i| {
        let mut rng = AugRng::from_keys(&[7, i]);
        let (size, interp) = draw_batch_resize(&mut AugRng::from_keys(&[8, i]));
        let mut batch = [decode(&files[i as usize % files.len()])];
        transforms.apply_and_resize(&mut batch[0], &mut rng, size, size, interp);
        let im = &batch[0].image;
        out.resize(3 * im.height * im.width, 0.0);
        normalize_permute(im, IMAGENET_MEAN, IMAGENET_STD, &mut out);
        black_box(&out);
    });
    both_clocks(&mut g, "decode+eval_transforms", |i| {
        let mut s = decode(&files[i as usize % files.len()]);
        eval_resize(&mut s);
        out.resize(3 * 640 * 640, 0.0);
        normalize_permute(&s.image, IMAGENET_MEAN, IMAGENET_STD, &mut out);
        black_box(&out);
    });
    g.finish();
}

// What `criterion_group!`/`criterion_main!` expand to, without the undocumented `pub fn` the
// group macro defines (the workspace warns on missing docs).
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}
