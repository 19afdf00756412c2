//! Tests of the messages a typical bad input gives: the error chain, as `main` joins it, names
//! each cause once. Library errors either print their cause and do not chain it (the project's
//! rule: `{path}: {error}` with a plain `error` field), or chain it and do not print it; doing
//! both made anyhow print the same cause twice. These run the commands' own `run` functions and
//! look at the raw chain, without `main`'s safety net that drops a repeated cause.

use std::path::{Path, PathBuf};

/// The chain joined by `: `, with nothing left out.
fn raw_chain(error: &anyhow::Error) -> String {
    error
        .chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

/// Asserts that no `: `-separated part of the message comes twice, and that `main` prints the
/// same text.
fn assert_no_repeat(error: &anyhow::Error) -> String {
    let text = raw_chain(error);
    let parts: Vec<&str> = text.split(": ").collect();
    for (i, part) in parts.iter().enumerate() {
        assert!(
            !parts[..i].contains(part),
            "`{part}` comes twice in `{text}`"
        );
    }
    assert_eq!(crate::error_chain(error), text);
    text
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ringdet-error-chains-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn coco_eval(gt: &Path, dt: &Path) -> anyhow::Error {
    super::coco_eval::run(super::coco_eval::Args {
        gt_json: gt.to_path_buf(),
        dt_json: dt.to_path_buf(),
        json: false,
        drop_unknown: false,
    })
    .unwrap_err()
}

#[test]
fn a_missing_coco_file_is_named_once_with_its_cause_once() {
    let dir = scratch("coco-missing");
    let dt = dir.join("dt.json");
    std::fs::write(&dt, "[]").unwrap();
    let gt = dir.join("missing.json");
    let text = assert_no_repeat(&coco_eval(&gt, &dt));
    assert!(text.contains(&gt.display().to_string()), "{text}");
    assert!(text.contains("No such file"), "{text}");
}

#[test]
fn a_malformed_coco_file_is_named_once() {
    let dir = scratch("coco-bad");
    let gt = dir.join("gt.json");
    std::fs::write(
        &gt,
        r#"{"images": [{"id": 1, "width": 4}], "annotations": [], "categories": []}"#,
    )
    .unwrap();
    let dt = dir.join("dt.json");
    std::fs::write(&dt, "[{\"image_id\": 1,").unwrap();
    let text = assert_no_repeat(&coco_eval(&gt, &dt));
    assert!(
        text.contains("dt.json") || text.contains("gt.json"),
        "{text}"
    );
}

#[test]
fn a_missing_safetensors_file_is_named_once_with_its_cause_once() {
    let dir = scratch("safetensors-missing");
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/ppyoloe-golden");
    std::fs::copy(
        golden.join("golden_meta.json"),
        dir.join("golden_meta.json"),
    )
    .unwrap();
    let error = super::parity::run_dir(&dir).unwrap_err();
    let text = assert_no_repeat(&error);
    assert!(text.contains("inputs.safetensors"), "{text}");
    assert!(text.contains("No such file"), "{text}");
    // The same file opened as the weights loader opens it.
    let missing = dir.join("weights.safetensors");
    let Err(error) = ringdet_tensor::SafeTensors::open(&missing) else {
        panic!("{} opened", missing.display());
    };
    let error = anyhow::Error::from(error).context("loading the weights");
    let text = assert_no_repeat(&error);
    assert!(text.contains("weights.safetensors"), "{text}");
}

#[test]
fn a_truncated_safetensors_file_is_named_once() {
    let dir = scratch("safetensors-truncated");
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/ppyoloe-golden");
    std::fs::copy(
        golden.join("golden_meta.json"),
        dir.join("golden_meta.json"),
    )
    .unwrap();
    std::fs::write(dir.join("inputs.safetensors"), [8u8, 0, 0]).unwrap();
    let text = assert_no_repeat(&super::parity::run_dir(&dir).unwrap_err());
    assert!(text.contains("inputs.safetensors"), "{text}");
}
