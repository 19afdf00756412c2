//! Draws solid objects into an image, runs each transform, and checks that every transformed box
//! still frames the pixels of its object (exactly for pixel-grid transforms, within a pixel for
//! resizes).

use ringdet_coco::image::RgbImage;
use ringdet_coco::transform::{
    AugRng, BATCH_SIZES, IMAGENET_MEAN, IMAGENET_STD, Interp, RandomCrop, RandomDistort,
    RandomExpand, Sample, TrainSampleTransforms, batch_random_resize, eval_resize,
    normalize_permute, random_crop, random_distort, random_expand, random_flip, resize_sample,
};

const BACKGROUND: [f32; 3] = [128.0, 128.0, 128.0];
const COLOURS: [[f32; 3]; 4] = [
    [255.0, 0.0, 0.0],
    [0.0, 255.0, 0.0],
    [0.0, 0.0, 255.0],
    [255.0, 255.0, 0.0],
];

/// 120×160 gray image with three rectangles and a disc; class = colour index.
fn scene() -> Sample {
    let (h, w) = (120, 160);
    let mut image = RgbImage::filled(h, w, BACKGROUND);
    let rects = [[10, 12, 50, 40], [70, 20, 150, 60], [30, 70, 90, 110]];
    let mut boxes = Vec::new();
    for (k, r) in rects.iter().enumerate() {
        for y in r[1]..r[3] {
            for x in r[0]..r[2] {
                let i = (y * w + x) * 3;
                image.pixels[i..i + 3].copy_from_slice(&COLOURS[k]);
            }
        }
        boxes.push(r.map(|v| v as f32));
    }
    // Disc of radius 12 centred at (130, 95): its pixel extent is its box.
    let mut ext = [usize::MAX, usize::MAX, 0, 0];
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x as f32 + 0.5 - 130.0, y as f32 + 0.5 - 95.0);
            if dx * dx + dy * dy <= 144.0 {
                let i = (y * w + x) * 3;
                image.pixels[i..i + 3].copy_from_slice(&COLOURS[3]);
                ext = [
                    ext[0].min(x),
                    ext[1].min(y),
                    ext[2].max(x + 1),
                    ext[3].max(y + 1),
                ];
            }
        }
    }
    boxes.push(ext.map(|v| v as f32));
    Sample::decoded(image, boxes, vec![0, 1, 2, 3], 7)
}

fn dist2(a: [f32; 3], b: [f32; 3]) -> f32 {
    a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Tight extent `[x1, y1, x2, y2)` of the pixels nearer to `COLOURS[k]` than to any other colour
/// or the background (or the expand fill).
fn extent(image: &RgbImage, k: usize) -> Option<[f32; 4]> {
    let fill = RandomExpand::default().fill_value;
    let mut e = [usize::MAX, usize::MAX, 0, 0];
    for y in 0..image.height {
        for x in 0..image.width {
            let p = image.get(y, x);
            let d = dist2(p, COLOURS[k]);
            let others = COLOURS
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != k)
                .map(|(_, c)| *c);
            if others.chain([BACKGROUND, fill]).all(|c| d < dist2(p, c)) {
                e = [e[0].min(x), e[1].min(y), e[2].max(x + 1), e[3].max(y + 1)];
            }
        }
    }
    (e[2] > 0).then(|| e.map(|v| v as f32))
}

fn assert_frames(sample: &Sample, tol: f32, what: &str) {
    assert_eq!(sample.gt_bbox.len(), sample.gt_class.len());
    for (b, &k) in sample.gt_bbox.iter().zip(&sample.gt_class) {
        let e = extent(&sample.image, k as usize)
            .unwrap_or_else(|| panic!("{what}: object {k} vanished"));
        for c in 0..4 {
            assert!(
                (e[c] - b[c]).abs() <= tol,
                "{what}: object {k} box {b:?}, pixels span {e:?}"
            );
        }
    }
}

#[test]
fn drawn_boxes_frame_their_objects() {
    assert_frames(&scene(), 0.0, "decoded");
}

#[test]
fn expand_keeps_boxes_on_their_objects() {
    let params = RandomExpand {
        prob: 0.0,
        ..RandomExpand::default()
    };
    let mut expanded = 0;
    for seed in 0..20 {
        let mut s = scene();
        random_expand(&mut s, &params, &mut AugRng::from_keys(&[seed]));
        expanded += (s.image.height > 120) as usize;
        assert!(s.image.height <= 480 && s.image.width <= 640);
        assert_frames(&s, 0.0, &format!("expand seed {seed}"));
    }
    assert!(expanded >= 18);
}

#[test]
fn crop_keeps_boxes_on_their_objects() {
    let params = RandomCrop {
        allow_no_crop: false,
        ..RandomCrop::default()
    };
    let mut cropped = 0;
    for seed in 0..40 {
        let mut s = scene();
        random_crop(&mut s, &params, &mut AugRng::from_keys(&[seed]));
        cropped += (s.image.width < 160) as usize;
        assert!(!s.gt_bbox.is_empty());
        assert_frames(&s, 0.0, &format!("crop seed {seed}"));
    }
    assert!(cropped >= 30, "only {cropped} of 40 crops happened");
}

#[test]
fn flip_keeps_boxes_on_their_objects() {
    let mut flipped = 0;
    for seed in 0..10 {
        let mut s = scene();
        random_flip(&mut s, 0.5, &mut AugRng::from_keys(&[seed]));
        flipped += (s.gt_bbox[0][0] != 10.0) as usize;
        assert_frames(&s, 0.0, &format!("flip seed {seed}"));
    }
    assert!((1..10).contains(&flipped));
}

#[test]
fn every_resize_keeps_boxes_on_their_objects() {
    for interp in Interp::RANDOM {
        for size in [96, 320, 544, 768] {
            let mut s = scene();
            resize_sample(&mut s, size, size, interp);
            assert_eq!(s.im_shape, [size as f32; 2]);
            assert_eq!(s.scale_factor, [size as f32 / 120.0, size as f32 / 160.0]);
            assert_frames(&s, 1.0, &format!("{interp:?} to {size}"));
        }
    }
}

#[test]
fn batch_resize_uses_one_of_the_fifteen_sizes_for_the_whole_batch() {
    let mut seen = std::collections::HashSet::new();
    for seed in 0..60 {
        let mut batch = vec![scene(), scene()];
        let (size, interp) = batch_random_resize(&mut batch, &mut AugRng::from_keys(&[seed]));
        assert!(BATCH_SIZES.contains(&size));
        seen.insert(format!("{interp:?}"));
        for s in &batch {
            assert_eq!((s.image.height, s.image.width), (size, size));
        }
        if seed < 5 {
            assert_frames(&batch[1], 1.0, &format!("batch resize {interp:?} {size}"));
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
}

#[test]
fn distort_moves_colours_not_geometry() {
    for seed in 0..20 {
        let mut s = scene();
        let before = s.clone();
        random_distort(
            &mut s.image,
            &RandomDistort::default(),
            &mut AugRng::from_keys(&[seed]),
        );
        assert_eq!(s.gt_bbox, before.gt_bbox);
        assert_eq!((s.image.height, s.image.width), (120, 160));
    }
    // Brightness alone adds one δ in [0.5, 1.5] to every value.
    let only_brightness = RandomDistort {
        hue: [-18.0, 18.0, 1.0],
        saturation: [0.5, 1.5, 1.0],
        contrast: [0.5, 1.5, 1.0],
        brightness: [0.5, 1.5, 0.0],
    };
    let mut s = scene();
    random_distort(&mut s.image, &only_brightness, &mut AugRng::from_keys(&[1]));
    let delta = s.image.pixels[0] - 128.0;
    assert!((0.5..1.5).contains(&delta));
    assert!(
        s.image
            .pixels
            .iter()
            .zip(&scene().image.pixels)
            .all(|(a, b)| (a - b - delta).abs() < 1e-4)
    );
    assert!(!s.image.integral);
}

#[test]
fn whole_train_chain_keeps_boxes_on_their_objects() {
    let transforms = TrainSampleTransforms {
        distort: RandomDistort {
            hue: [0.0, 0.0, 1.0],
            saturation: [1.0, 1.0, 1.0],
            contrast: [1.0, 1.0, 1.0],
            brightness: [0.0, 0.0, 1.0],
        },
        ..TrainSampleTransforms::default()
    };
    for seed in 0..30 {
        let mut rng = AugRng::from_keys(&[seed]);
        let mut batch = vec![scene()];
        transforms.apply(&mut batch[0], &mut rng);
        batch_random_resize(&mut batch, &mut rng);
        assert_frames(&batch[0], 1.0, &format!("chain seed {seed}"));
    }
}

#[test]
fn eval_resize_is_640_bicubic_with_per_axis_scale() {
    let mut s = scene();
    eval_resize(&mut s);
    assert_eq!((s.image.height, s.image.width), (640, 640));
    assert_eq!(s.scale_factor, [640.0 / 120.0, 640.0 / 160.0]);
    assert!(
        s.image.integral,
        "bicubic on uint8 stays uint8 until normalisation"
    );
    assert_frames(&s, 1.0, "eval resize");
}

#[test]
fn normalize_permute_is_chw_imagenet() {
    let image = RgbImage::from_rgb8(1, 2, &[255, 0, 0, 0, 255, 10]);
    let mut out = vec![0.0; 6];
    normalize_permute(&image, IMAGENET_MEAN, IMAGENET_STD, &mut out);
    let want = [
        (1.0 - 0.485) / 0.229,
        (0.0 - 0.485) / 0.229,
        (0.0 - 0.456) / 0.224,
        (1.0 - 0.456) / 0.224,
        (0.0 - 0.406) / 0.225,
        (10.0 / 255.0 - 0.406) / 0.225,
    ];
    for (a, b) in out.iter().zip(want) {
        assert!((a - b).abs() < 1e-5, "{out:?}");
    }
}

#[test]
fn fused_train_chain_equals_the_transforms_one_by_one() {
    let t = TrainSampleTransforms::default();
    let mut expanded_and_cropped = 0;
    for seed in 0..200 {
        let mut fused = scene();
        t.apply(&mut fused, &mut AugRng::from_keys(&[seed]));
        let mut rng = AugRng::from_keys(&[seed]);
        let mut one_by_one = scene();
        random_distort(&mut one_by_one.image, &t.distort, &mut rng);
        random_expand(&mut one_by_one, &t.expand, &mut rng);
        let expanded = one_by_one.image.height > 120;
        random_crop(&mut one_by_one, &t.crop, &mut rng);
        expanded_and_cropped += (expanded && one_by_one.image.height < 120 * 4) as usize;
        random_flip(&mut one_by_one, t.flip_prob.0, &mut rng);
        assert!(fused == one_by_one, "seed {seed}");
    }
    assert!(expanded_and_cropped > 20);
}

#[test]
fn resizing_from_the_unbuilt_canvas_equals_building_it_first() {
    let t = TrainSampleTransforms::default();
    for seed in 0..100 {
        let interp = Interp::RANDOM[seed as usize % 5];
        let size = BATCH_SIZES[seed as usize % 15];
        let mut built = scene();
        t.apply(&mut built, &mut AugRng::from_keys(&[seed]));
        resize_sample(&mut built, size, size, interp);
        let mut direct = scene();
        t.apply_and_resize(
            &mut direct,
            &mut AugRng::from_keys(&[seed]),
            size,
            size,
            interp,
        );
        assert!(built == direct, "seed {seed}");
    }
}
