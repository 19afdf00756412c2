//! `ringdet convert` end to end on the Paddle-made fixtures (testdata/pdparams): pdparams ->
//! safetensors -> pdparams keeps every tensor bit for bit, the direction follows the
//! extensions, non-tensor entries of a `.pdopt` are listed, and bad inputs are errors naming
//! the file (a foreign pickle global by its name).

mod common;

use common::{BIN, scratch};
use ringdet_tensor::{PdParams, SafeTensors};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/ppyoloe-golden/weights.safetensors"
);

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/pdparams")
        .join(name)
}

fn convert(args: &[&Path], to: Option<&str>) -> Output {
    let mut c = Command::new(BIN);
    c.arg("convert").args(args);
    if let Some(t) = to {
        c.args(["--to", t]);
    }
    c.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn pdparams_to_safetensors_and_back_is_bit_identical() {
    let dir = scratch("convert-round-trip");
    let st = dir.join("subset.safetensors");
    let out = convert(&[&fixture("paddle3_p2.pdparams"), &st], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let source = PdParams::open(fixture("paddle3_p2.pdparams")).unwrap();
    let line = text(&out.stdout);
    assert!(
        line.contains(&format!("convert: {} tensors", source.len()))
            && line.contains("pickle protocol 2")
            && line.contains("(safetensors)"),
        "{line}"
    );
    // Paddle 3's name table is listed, not written.
    assert!(text(&out.stderr).contains("StructuredToParameterName@@"));
    // No extension on OUT: the other format than IN's.
    let back = dir.join("back");
    let out = convert(&[&st, &back], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("(pdparams)"));
    let back = PdParams::open(&back).unwrap();
    let golden = SafeTensors::open(GOLDEN).unwrap();
    assert_eq!(back.len(), source.len());
    for ((n, t), (m, u)) in source.tensors().iter().zip(back.tensors()) {
        assert_eq!(n, m);
        let g = golden.tensor(n).unwrap();
        assert_eq!(u.shape(), g.shape(), "{n}");
        assert_eq!(
            u.to_contiguous_bytes().unwrap(),
            g.to_contiguous_bytes().unwrap(),
            "{n}"
        );
        assert_eq!(
            t.to_contiguous_bytes().unwrap(),
            u.to_contiguous_bytes().unwrap()
        );
    }
}

#[test]
fn optimizer_state_lists_what_is_not_a_tensor() {
    let dir = scratch("convert-pdopt");
    let out = convert(
        &[&fixture("paddle3.pdopt"), &dir.join("opt")],
        Some("safetensors"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("convert: 3 tensors"),
        "{}",
        text(&out.stdout)
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("LR_Scheduler: dict of 2 entries, no arrays"),
        "{err}"
    );
    assert!(err.contains("last_epoch: int 7"), "{err}");
    let st = SafeTensors::open(dir.join("opt")).unwrap();
    assert!(st.info("master_weights/linear_0.w_0").is_some());
}

#[test]
fn bad_inputs_are_named() {
    let dir = scratch("convert-bad");
    let out = convert(
        &[&fixture("evil_p4.pdparams"), &dir.join("x.safetensors")],
        None,
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("evil_p4.pdparams") && err.contains("global posix.system is not allowed"),
        "{err}"
    );
    assert!(!dir.join("x.safetensors").exists());
    let out = convert(&[&dir.join("none.pdparams"), &dir.join("y")], None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("none.pdparams"));
    let out = convert(
        &[&fixture("paddle3_p4.pdparams"), &dir.join("z.safetensors")],
        Some("pdparams"),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--to pdparams contradicts"),
        "{}",
        text(&out.stderr)
    );
}

/// `--to paddle-checkpoint`: a ringdet checkpoint (here: the PaddleDetection fixture resumed and
/// saved our way) becomes `.pdparams` + `.pdema` + `.pdopt` with Paddle's velocity names, equal
/// bit for bit to the velocities of the PaddleDetection checkpoint it came from.
#[test]
fn ringdet_checkpoint_to_paddle_checkpoint() {
    use ringdet_detect::arch::{Arch, ModelConfig};
    use ringdet_detect::state::ModelState;
    use ringdet_detect::train::{ema::Ema, sgd::Sgd};
    use ringdet_train::checkpoint::{Checkpoint, Fingerprint, paddle};
    let dir = scratch("convert-paddle-checkpoint");
    let pd = fixture("resume/model_final");
    let arch = Arch::new(ModelConfig::new(0.0625, 0.2).with_classes(7)).unwrap();
    let layout = ModelState::zeros(&arch).unwrap().layout;
    let ema = Ema::new(0.9998, layout.num_params(), layout.num_stats());
    let r = paddle::resume(
        &pd,
        &arch,
        "demo",
        &Fingerprint::default(),
        &ringdet_detect::train::optimizer::Optimizer::Momentum(Sgd::ppyoloe(&layout)),
        Some(&ema),
    )
    .unwrap();
    let ours = Checkpoint::new(dir.join("output"), "model_final").unwrap();
    std::fs::create_dir_all(&ours.dir).unwrap();
    ours.save(r.snapshot.as_ref()).unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs/demo/ppyoloe_shapes_demo.yml")
        .canonicalize()
        .unwrap();
    let config = dir.join("demo.yml");
    std::fs::write(
        &config,
        format!(
            "_BASE_: ['{}']\nwidth_mult: 0.0625\ndepth_mult: 0.2\n",
            demo.display()
        ),
    )
    .unwrap();
    let out_base = dir.join("model_final");
    let names = fixture("resume/model_final.pdparams");
    // Without the config: refused, saying what is needed.
    let out = Command::new(BIN)
        .arg("convert")
        .args([ours.dir.join("model_final"), out_base.clone()])
        .args(["--to", "paddle-checkpoint"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("-c CONFIG"),
        "{}",
        text(&out.stderr)
    );
    let out = Command::new(BIN)
        .arg("convert")
        .args([ours.dir.join("model_final"), out_base.clone()])
        .args(["--to", "paddle-checkpoint", "-c"])
        .arg(&config)
        .arg("--paddle_names")
        .arg(&names)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("248 velocities"),
        "{}",
        text(&out.stdout)
    );
    let (orig, back) = (
        PdParams::open(pd.with_extension("pdopt")).unwrap(),
        PdParams::open(out_base.with_extension("pdopt")).unwrap(),
    );
    for (name, t) in orig.tensors() {
        let b = back.tensor(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(
            b.to_vec::<f32>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect::<Vec<_>>(),
            t.to_vec::<f32>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect::<Vec<_>>(),
            "{name}"
        );
    }
    assert_eq!(back.int("last_epoch"), Some(1));
    assert!(out_base.with_extension("pdema").exists());
    assert!(out_base.with_extension("pdparams").exists());
}
