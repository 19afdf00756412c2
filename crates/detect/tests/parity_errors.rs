//! `parity::run` fails with a message naming the file when a golden directory is incomplete.

#[test]
fn missing_files_are_named() {
    let dir = std::env::temp_dir().join(format!("ringdet-parity-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let err = ringdet_detect::parity::run(&dir).unwrap_err().to_string();
    assert!(err.contains("golden_meta.json"), "{err}");
    std::fs::write(dir.join("golden_meta.json"), "{\"cfg\": {}}").unwrap();
    let err = ringdet_detect::parity::run(&dir).unwrap_err().to_string();
    assert!(err.contains("inputs.safetensors"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
