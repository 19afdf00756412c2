//! `curves.png` from a small `metrics.jsonl`: a valid PNG of the documented size (decoded with
//! the coco crate's PNG decoder, not just its signature), and a malformed row is an error that
//! names its line.

use std::path::{Path, PathBuf};

use ringdet_train::trainer::plots::{Curves, HEIGHT, PlotError, WIDTH, plot_metrics};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("plot-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// 40 steps over 4 epochs of falling losses and a warmup + cosine LR, an eval row every epoch.
fn metrics_text() -> String {
    let mut text = String::new();
    for step in 0..40u32 {
        let (epoch, iter) = (step / 10, step % 10);
        let t = f64::from(step);
        let lr = if step < 10 {
            0.01 * t / 10.0
        } else {
            0.005 * (1.0 + (std::f64::consts::PI * (t - 10.0) / 30.0).cos())
        };
        let cls = 1.5 * (-t / 15.0).exp() + 0.3;
        let iou = 0.8 * (-t / 20.0).exp() + 0.2;
        let dfl = 0.6 * (-t / 25.0).exp() + 0.4;
        text.push_str(&format!(
            "{{\"kind\":\"train\",\"epoch\":{epoch},\"iter\":{iter},\"step\":{step},\"lr\":{lr},\
             \"loss\":{},\"loss_cls\":{cls},\"loss_iou\":{iou},\"loss_dfl\":{dfl},\"loss_l1\":0.1,\
             \"batch_cost\":0.5,\"data_cost\":0.01,\"comm_exposed\":0.0,\"ips\":16.0}}\n",
            cls + 2.5 * iou + 0.5 * dfl
        ));
        if iter == 9 {
            let ap = 0.2 * f64::from(epoch + 1);
            text.push_str(&format!(
                "{{\"kind\":\"eval\",\"epoch\":{epoch},\"stats\":[{ap},{},0,0,0,0,0,0,0,0,0,0],\
                 \"seconds\":1.0}}\n",
                (ap * 1.5).min(1.0)
            ));
        }
    }
    text
}

#[test]
fn a_small_metrics_file_makes_a_valid_png() {
    let dir = scratch("valid");
    let metrics = dir.join("metrics.jsonl");
    std::fs::write(&metrics, metrics_text()).unwrap();
    let out = dir.join("curves.png");
    let curves = plot_metrics(&metrics, &out).unwrap();
    assert_eq!((curves.train_rows(), curves.eval_rows()), (40, 4));
    let bytes = std::fs::read(&out).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    let (h, w, rgb) = ringdet_coco::image::decode_png(&bytes).unwrap();
    assert_eq!((w, h), (WIDTH as usize, HEIGHT as usize));
    // Something was drawn: neither blank white nor one colour.
    let dark = rgb
        .chunks_exact(3)
        .filter(|p| p.iter().all(|&c| c < 100))
        .count();
    assert!(dark > 1000, "{dark} dark pixels");
    assert!(!dir.join("curves.png.tmp").exists());
}

#[test]
fn train_rows_alone_still_plot() {
    let dir = scratch("no-eval");
    let metrics = dir.join("metrics.jsonl");
    let text: String = metrics_text()
        .lines()
        .filter(|l| l.contains("\"train\""))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&metrics, text).unwrap();
    let out = dir.join("sub/curves.png");
    let curves = plot_metrics(&metrics, &out).unwrap();
    assert_eq!(curves.eval_rows(), 0);
    let (h, w, _) = ringdet_coco::image::decode_png(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!((w, h), (1200, 900));
}

#[test]
fn malformed_rows_name_their_line() {
    let good = metrics_text();
    let mut lines: Vec<&str> = good.lines().collect();
    let cases = [
        ("{\"kind\":\"train\",\"step\":", "not a JSON object"),
        ("[1,2]", "not a JSON object"),
        ("{\"step\":3}", "no \"kind\""),
        (
            "{\"kind\":\"train\",\"step\":5,\"loss\":1,\"loss_cls\":1,\"loss_iou\":1}",
            "without \"loss_dfl\"",
        ),
        (
            "{\"kind\":\"train\",\"step\":5,\"loss\":\"x\",\"loss_cls\":1,\"loss_iou\":1,\"loss_dfl\":1}",
            "\"loss\" is not a number",
        ),
        (
            "{\"kind\":\"eval\",\"epoch\":1,\"stats\":[0.5]}",
            "stats[1]",
        ),
        (
            "{\"kind\":\"eval\",\"stats\":[0.5, 0.6]}",
            "integer \"epoch\"",
        ),
    ];
    for (row, want) in cases {
        lines[6] = row;
        let err = Curves::parse(&lines.join("\n"), Path::new("out/metrics.jsonl")).unwrap_err();
        assert!(matches!(err, PlotError::Row { line: 7, .. }), "{err}");
        let text = err.to_string();
        assert!(text.starts_with("out/metrics.jsonl:7: "), "{text}");
        assert!(text.contains(want), "{text} lacks {want}");
    }
    let missing = plot_metrics(Path::new("no/such/metrics.jsonl"), Path::new("x.png"));
    assert!(
        missing
            .unwrap_err()
            .to_string()
            .starts_with("no/such/metrics.jsonl: ")
    );
}
