//! RepVGG fusion: the fused backbone's outputs equal the unfused ones within 1e-5 (relative L2);
//! the neck amplifies float32 reassociation about tenfold (as PaddleDetection's own fp32-vs-fp64
//! figures show), so scores and distances are held to 1e-4 and reported.

mod common;

use common::{GOLDEN, Set, rel_l2};
use ringdet_detect::arch::{Arch, ModelConfig};
use ringdet_detect::checkpoint;
use ringdet_detect::detector::{eval_forward, eval_forward_fused};
use ringdet_detect::fuse::fuse_repvgg;
use ringdet_detect::model::Feat;
use ringdet_detect::state::ModelState;

#[test]
fn fused_equals_unfused() {
    let arch = Arch::new(ModelConfig::s()).unwrap();
    let mut state = ModelState::zeros(&arch).unwrap();
    checkpoint::load(&mut state, format!("{GOLDEN}/weights.safetensors")).unwrap();
    let fused = fuse_repvgg(&arch, &state).unwrap();
    assert_eq!(fused.len(), 11);
    let inputs = Set::open(&format!("{GOLDEN}/inputs.safetensors"));
    let s = inputs.shape("image");
    let image = Feat::from_vec(inputs.f32("image"), s[0], s[1], s[2], s[3]).unwrap();
    let a = eval_forward(&arch, &state, &image).unwrap();
    let b = eval_forward_fused(&arch, &state, Some(&fused), &image).unwrap();
    for (x, y) in a.backbone.iter().zip(&b.backbone) {
        let e = rel_l2(&y.data, &x.data);
        println!("backbone rel L2 {e:.2e}");
        assert!(e < 1e-5, "backbone {e}");
    }
    // Intermediate features differ by float32 reassociation only (reported, not the criterion).
    for (x, y) in a.neck.iter().zip(&b.neck) {
        println!("neck rel L2 {:.2e}", rel_l2(&y.data, &x.data));
    }
    let max_abs = |x: &[f32], y: &[f32]| {
        x.iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max)
    };
    let e = max_abs(&b.scores, &a.scores);
    let r = rel_l2(&b.scores, &a.scores);
    println!("scores max abs {e:.2e}, rel L2 {r:.2e}");
    assert!(e < 1e-4 && r < 1e-4, "scores {e} {r}");
    let (da, db): (Vec<f32>, Vec<f32>) = (a.dist.concat(), b.dist.concat());
    let e = max_abs(&db, &da);
    let r = rel_l2(&db, &da);
    println!("distances (stride units) max abs {e:.2e}, rel L2 {r:.2e}");
    assert!(r < 1e-4, "distances {r}");
    // Both agree with PaddleDetection's unfused eval within the README tolerance.
    let eval = Set::open(&format!("{GOLDEN}/eval.safetensors"));
    let e = rel_l2(&b.scores, &eval.f32("head.cls_score"));
    println!("fused vs Paddle scores rel L2 {e:.2e}");
    assert!(e < 5e-4);
}
