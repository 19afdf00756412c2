//! RepVGG fusion is exact: on the golden weights and inputs,
//! 1. in f64 the fused model's outputs (backbone, neck, logits, scores, DFL, distances, boxes)
//!    equal the unfused model's within 1e-9 relative L2 (they agree to ~1e-15: the algebra is exact);
//! 2. in f32 every fused block's output equals the unfused block's on the input the block really
//!    sees within 1e-6 (one conv's rounding), and is no further from the f64 block than the
//!    unfused f32 block is (within a factor 2);
//! 3. in f32 end to end the backbone agrees within 1e-5. Deeper, the network amplifies float32
//!    rounding about tenfold (PaddleDetection's own fp32-vs-fp64 gap is 3.5e-5 – 6e-5 at the neck
//!    and 4e-5 at the scores), so fused and unfused f32 differ by ~2e-5 there, neither being the
//!    truth: what is asserted is that the fused f32 model is no further from the f64 model than the
//!    unfused f32 model is (within a factor 1.5; measured ≤ 1.03), both figures are printed, and
//!    fused vs unfused f32 stays below 1e-4 there.

mod common;

use common::{GOLDEN, Set};
use ringdet_detect::arch::{Arch, CspItemSpec, ModelConfig, RepVggSpec};
use ringdet_detect::checkpoint;
use ringdet_detect::detector::{EvalOutputs, eval_forward, eval_forward_as, eval_forward_fused};
use ringdet_detect::fuse::{block_name, fuse_repvgg, fuse_repvgg_as};
use ringdet_detect::model::blocks::repvgg_forward;
use ringdet_detect::model::{Feat, Fwd, backbone, neck};
use ringdet_detect::state::ModelState;
use ringdet_kernels::Real;

/// ‖a − b‖₂ / ‖b‖₂ in f64, for any mix of float types.
fn rel<A: Real, B: Real>(a: &[A], b: &[B]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x.to_f64() - y.to_f64()).powi(2))
        .sum();
    let den: f64 = b.iter().map(|y| y.to_f64().powi(2)).sum();
    (num / den).sqrt()
}

/// The compared outputs of an evaluation forward, by name, flattened.
fn outputs<T: Real>(o: &EvalOutputs<T>) -> Vec<(String, Vec<T>)> {
    let mut v = Vec::new();
    for (i, f) in o.backbone.iter().enumerate() {
        v.push((format!("backbone.out{i}"), f.data.clone()));
    }
    for (i, f) in o.neck.iter().enumerate() {
        v.push((format!("neck.out{i}"), f.data.clone()));
    }
    let cls: Vec<T> = o.logits.iter().flat_map(|l| l.cls.data.clone()).collect();
    let reg: Vec<T> = o.logits.iter().flat_map(|l| l.reg.data.clone()).collect();
    v.push(("head.cls_logits".into(), cls));
    v.push(("head.reg_logits".into(), reg));
    v.push(("head.cls_score".into(), o.scores.clone()));
    v.push(("head.reg_softmax".into(), o.reg_softmax.concat()));
    v.push(("head.dist".into(), o.dist.concat()));
    v.push(("decoded.boxes_input_px".into(), o.boxes_input_px.concat()));
    v
}

fn repvgg_specs(arch: &Arch) -> Vec<&RepVggSpec> {
    let mut v: Vec<&RepVggSpec> = Vec::new();
    for st in &arch.backbone.stages {
        v.extend(st.blocks.iter().map(|b| &b.conv2));
    }
    for st in arch.neck.fpn_stages.iter().chain(&arch.neck.pan_stages) {
        for item in &st.convs {
            if let CspItemSpec::Block(b) = item {
                v.push(&b.conv2);
            }
        }
    }
    v
}

struct Golden {
    arch: Arch,
    state: ModelState,
    image: Feat,
}

fn golden() -> Golden {
    let arch = Arch::new(ModelConfig::s()).unwrap();
    let mut state = ModelState::zeros(&arch).unwrap();
    checkpoint::load(&mut state, format!("{GOLDEN}/weights.safetensors")).unwrap();
    let inputs = Set::open(&format!("{GOLDEN}/inputs.safetensors"));
    let s = inputs.shape("image");
    let image = Feat::from_vec(inputs.f32("image"), s[0], s[1], s[2], s[3]).unwrap();
    Golden { arch, state, image }
}

#[test]
fn fused_equals_unfused_in_f64() {
    let g = golden();
    let fused = fuse_repvgg_as::<f64>(&g.arch, &g.state).unwrap();
    assert_eq!(fused.len(), 11);
    let image = g.image.cast::<f64>();
    let a = eval_forward_as(&g.arch, &g.state, None, &image).unwrap();
    let b = eval_forward_as(&g.arch, &g.state, Some(&fused), &image).unwrap();
    for ((name, x), (_, y)) in outputs(&a).iter().zip(&outputs(&b)) {
        let e = rel(y, x);
        println!("f64 fused vs unfused {name:24} rel L2 {e:.2e}");
        assert!(e <= 1e-9, "{name}: {e}");
    }
}

#[test]
fn fused_blocks_equal_unfused_blocks_in_f32() {
    let g = golden();
    let (arch, state) = (&g.arch, &g.state);
    // The input every block sees in the unfused f32 model.
    let mut ctx = Fwd::eval(&state.layout, &state.params, &state.stats);
    ctx.repvgg_inputs = Some(Vec::new());
    let (bb, _) = backbone::forward(&mut ctx, &arch.backbone, &g.image).unwrap();
    neck::forward(&mut ctx, &arch.neck, &bb).unwrap();
    let inputs = ctx.repvgg_inputs.take().unwrap();
    assert_eq!(inputs.len(), 11);
    let fused = fuse_repvgg(arch, state).unwrap();
    let (p64, s64): (Vec<f64>, Vec<f64>) = (
        state.params.iter().map(|&v| v.into()).collect(),
        state.stats.iter().map(|&v| v.into()).collect(),
    );
    let specs = repvgg_specs(arch);
    for (name, x) in &inputs {
        let s = specs.iter().find(|s| block_name(s) == name).unwrap();
        let mut plain = Fwd::eval(&state.layout, &state.params, &state.stats);
        let (u32_, _) = repvgg_forward(&mut plain, s, x).unwrap();
        let mut with = Fwd::eval(&state.layout, &state.params, &state.stats);
        with.fused = Some(&fused);
        let (f32_, _) = repvgg_forward(&mut with, s, x).unwrap();
        let mut wide = Fwd::eval(&state.layout, &p64, &s64);
        let (u64_, _) = repvgg_forward(&mut wide, s, &x.cast::<f64>()).unwrap();
        let (e, eu, ef) = (
            rel(&f32_.data, &u32_.data),
            rel(&u32_.data, &u64_.data),
            rel(&f32_.data, &u64_.data),
        );
        println!(
            "f32 block {name:38} fused vs unfused {e:.2e}; vs f64: unfused {eu:.2e}, fused {ef:.2e}"
        );
        assert!(e <= 1e-6, "{name}: {e}");
        assert!(ef <= 2.0 * eu.max(1e-7), "{name}: fused {ef} unfused {eu}");
    }
}

#[test]
fn fused_f32_is_as_close_to_f64_as_unfused_f32() {
    let g = golden();
    let fused = fuse_repvgg(&g.arch, &g.state).unwrap();
    let a = eval_forward(&g.arch, &g.state, &g.image).unwrap();
    let b = eval_forward_fused(&g.arch, &g.state, Some(&fused), &g.image).unwrap();
    let t = eval_forward_as(&g.arch, &g.state, None, &g.image.cast::<f64>()).unwrap();
    let (a, b, t) = (outputs(&a), outputs(&b), outputs(&t));
    for (((name, u), (_, f)), (_, x)) in a.iter().zip(&b).zip(&t) {
        let (e, eu, ef) = (rel(f, u), rel(u, x), rel(f, x));
        println!(
            "f32 {name:24} fused vs unfused {e:.2e}; vs f64: unfused {eu:.2e}, fused {ef:.2e}"
        );
        let bound = if name.starts_with("backbone") {
            1e-5
        } else {
            1e-4
        };
        assert!(e <= bound, "{name}: {e}");
        assert!(ef <= 1.5 * eu.max(1e-7), "{name}: fused {ef} unfused {eu}");
    }
    // Both agree with PaddleDetection's unfused f32 eval within the README tolerance.
    let eval = Set::open(&format!("{GOLDEN}/eval.safetensors"));
    let e = rel(&b[b.len() - 4].1, &eval.f32("head.cls_score"));
    println!("fused f32 vs Paddle scores rel L2 {e:.2e}");
    assert!(e < 5e-4);
}
