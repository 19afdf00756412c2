//! `ringdet demo` end to end, scaled down (`--train_images`, `-o`): in an empty work folder it
//! writes the configs it needs, makes the shapes dataset, trains on 2 ranks through the launcher
//! with `--eval` and leaves its output under `DIR/output/` (metrics, checkpoints, curves.png,
//! validation pictures with detections); a second run reuses the dataset and
//! keeps a config the user edited.

mod common;

use std::process::Command;

use common::{BIN, scratch};

fn demo(dir: &std::path::Path, port: u16) -> std::process::Output {
    Command::new(BIN)
        .args(["demo", "--workdir"])
        .arg(dir)
        .args(["--train_images", "16", "--val_images", "4"])
        .args(["--start_port", &port.to_string()])
        .args([
            "-o",
            "epoch=1",
            "width_mult=0.125",
            "TrainReader.batch_size=2",
        ])
        .args(["EvalReader.batch_size=2", "log_iter=1"])
        .env_remove("RINGDET_JOB_SECRET")
        .env_remove("FLAGS_START_PORT")
        .env_remove("POD_IP")
        .output()
        .unwrap()
}

#[test]
fn demo_trains_and_evaluates_in_an_empty_folder() {
    let dir = scratch("demo").join("work");
    let out = demo(&dir, 25230);
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    for needle in [
        "wrote the shapes dataset: 16 train and 4 val images",
        "Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ]",
        "demo: bbox mAP",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let output = dir.join("output/ppyoloe_shapes_demo");
    for file in [
        "metrics.jsonl",
        "model_final.safetensors",
        "best_model.safetensors",
    ] {
        assert!(
            output.join(file).is_file(),
            "{file} missing in {}",
            output.display()
        );
    }
    // The curves and one picture per validation image (at most 8), drawn by best_model.
    assert!(output.join("curves.png").is_file(), "{text}");
    let pictures = std::fs::read_dir(output.join("pictures")).unwrap().count();
    assert_eq!(pictures, 4, "{text}");
    let rows = std::fs::read_to_string(output.join("metrics.jsonl")).unwrap();
    let evals = rows
        .lines()
        .filter(|l| l.contains(r#""kind":"eval""#))
        .count();
    assert_eq!(evals, 1, "{rows}");

    // Again: the dataset is reused and an edited config is kept.
    let config = dir.join("configs/demo/ppyoloe_shapes_demo.yml");
    let edited = std::fs::read_to_string(&config).unwrap() + "\n# edited\n";
    std::fs::write(&config, &edited).unwrap();
    let again = demo(&dir, 25240);
    let text = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(again.status.success(), "{text}");
    assert!(text.contains("using the shapes dataset in"), "{text}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited);
}
