//! The same-job check: every launcher describes its job (ringdet version, worker command line,
//! sha256 of each `-c` config file and of its `_BASE_` includes, layout flags) and the first host
//! compares them before any worker starts, so that hosts with different code, configs or commands
//! stop with a message showing what differs (PaddleDetection only asks users to keep them equal).

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What must be equal on every host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// ringdet's version.
    pub version: String,
    /// The worker command (`ringdet <subcommand ...>` with the binary's path left out).
    pub command: Vec<String>,
    /// Config files named with `-c`/`--config`, then their `_BASE_` includes, depth first.
    pub files: Vec<FileHash>,
    /// Workers per host.
    pub local_world_size: usize,
    /// `--ips`.
    pub ips: Vec<String>,
    /// `--start_port`.
    pub start_port: u16,
    /// `--job_id`.
    pub job_id: String,
    /// sha256 of the job secret (with a domain tag), when one was given.
    pub secret_proof: Option<String>,
}

/// A file as named on the command line (or in `_BASE_`), and its sha256 or why it has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHash {
    /// Path as the user (or the including file) wrote it, resolved against the including file.
    pub path: String,
    /// `sha256:<hex>` or `unreadable (<reason>)`.
    pub digest: String,
}

/// The config files a worker command names with `-c FILE`, `-c=FILE`, `--config FILE` or `--config=FILE`.
pub fn config_paths(command: &[String]) -> Vec<String> {
    let mut paths = Vec::new();
    let mut args = command.iter();
    while let Some(arg) = args.next() {
        if arg == "-c" || arg == "--config" {
            paths.extend(args.next().cloned());
        } else if let Some(path) = arg.strip_prefix("-c=").or(arg.strip_prefix("--config=")) {
            paths.push(path.to_string());
        }
    }
    paths
}

/// Hashes each config and, recursively, the files its `_BASE_` list names (relative to the
/// including file), each once. Paths are resolved against `cwd`.
pub fn hash_configs(cwd: &Path, paths: &[String]) -> Vec<FileHash> {
    let mut hashes = Vec::new();
    let mut seen = HashSet::new();
    for path in paths {
        hash_with_bases(cwd, &normalize(Path::new(path)), &mut seen, &mut hashes, 0);
    }
    hashes
}

fn hash_with_bases(
    cwd: &Path,
    path: &Path,
    seen: &mut HashSet<PathBuf>,
    out: &mut Vec<FileHash>,
    depth: usize,
) {
    if !seen.insert(path.to_path_buf()) || depth > 32 {
        return;
    }
    let shown = path.display().to_string();
    match std::fs::read(cwd.join(path)) {
        Err(err) => out.push(FileHash {
            path: shown,
            digest: format!("unreadable ({err})"),
        }),
        Ok(bytes) => {
            let digest = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>();
            out.push(FileHash {
                path: shown,
                digest: format!("sha256:{digest}"),
            });
            let dir = path.parent().unwrap_or(Path::new(""));
            for base in base_includes(&bytes) {
                hash_with_bases(cwd, &normalize(&dir.join(base)), seen, out, depth + 1);
            }
        }
    }
}

/// The `_BASE_` list of a PaddleDetection YAML config (empty when absent or not YAML).
/// A real YAML parser (serde_yaml_ng) reads it, so flow lists, block lists, quoting and
/// comments all work as in PaddleDetection's own loader.
pub fn base_includes(yaml: &[u8]) -> Vec<String> {
    let Ok(doc) = serde_yaml_ng::from_slice::<serde_yaml_ng::Value>(yaml) else {
        return Vec::new();
    };
    match doc.get("_BASE_") {
        Some(serde_yaml_ng::Value::Sequence(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        Some(serde_yaml_ng::Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

/// Removes `.` and `name/..` pairs without touching the filesystem.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// What differs between the first host's fingerprint and another's, one line per difference.
pub fn differences(first: &Fingerprint, other: &Fingerprint) -> Vec<String> {
    let mut diffs = Vec::new();
    let mut field = |name: &str, a: String, b: String| {
        if a != b {
            diffs.push(format!("{name}: `{a}` on the first host, `{b}` here"));
        }
    };
    field(
        "ringdet version",
        first.version.clone(),
        other.version.clone(),
    );
    field(
        "worker command",
        first.command.join(" "),
        other.command.join(" "),
    );
    field(
        "workers per host",
        first.local_world_size.to_string(),
        other.local_world_size.to_string(),
    );
    field("--ips", first.ips.join(","), other.ips.join(","));
    field(
        "--start_port",
        first.start_port.to_string(),
        other.start_port.to_string(),
    );
    field("--job_id", first.job_id.clone(), other.job_id.clone());
    if first.secret_proof != other.secret_proof {
        diffs.push("job secret: the hosts were given different secrets (or only some were)".into());
    }
    for theirs in &other.files {
        match first.files.iter().find(|f| f.path == theirs.path) {
            Some(ours) if ours.digest != theirs.digest => diffs.push(format!(
                "config {}: {} on the first host, {} here",
                theirs.path, ours.digest, theirs.digest
            )),
            None => diffs.push(format!(
                "config {} is used here but not on the first host",
                theirs.path
            )),
            _ => {}
        }
    }
    for ours in &first.files {
        if !other.files.iter().any(|f| f.path == ours.path) {
            diffs.push(format!(
                "config {} is used on the first host but not here",
                ours.path
            ));
        }
    }
    diffs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_config_flags() {
        let cmd: Vec<String> = ["train", "-c", "a.yml", "--config=b.yml", "-o", "x=1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(config_paths(&cmd), ["a.yml", "b.yml"]);
    }

    #[test]
    fn follows_base_includes_of_paddledetection_configs() {
        let configs = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs");
        let hashes = hash_configs(
            Path::new(configs),
            &["ppyoloe/ppyoloe_crn_s_300e_coco.yml".into()],
        );
        let paths: Vec<&str> = hashes.iter().map(|h| h.path.as_str()).collect();
        assert_eq!(paths[0], "ppyoloe/ppyoloe_crn_s_300e_coco.yml");
        assert!(paths.contains(&"runtime.yml"), "{paths:?}");
        assert!(
            paths.contains(&"ppyoloe/_base_/ppyoloe_crn.yml"),
            "{paths:?}"
        );
        assert_eq!(paths.len(), 6, "{paths:?}");
        assert!(
            hashes.iter().all(|h| h.digest.starts_with("sha256:")),
            "{hashes:?}"
        );
    }

    #[test]
    fn block_lists_and_missing_files() {
        assert_eq!(
            base_includes(b"_BASE_:\n  - 'x.yml' # c\n  - y.yml\nk: 1\n"),
            ["x.yml", "y.yml"]
        );
        assert!(base_includes(b"not: [yaml").is_empty());
        let h = hash_configs(Path::new("/nonexistent"), &["a/../b.yml".into()]);
        assert_eq!(h[0].path, "b.yml");
        assert!(h[0].digest.starts_with("unreadable"));
    }

    #[test]
    fn differences_name_the_field() {
        let a = Fingerprint {
            version: "0.1.0".into(),
            command: vec!["train".into()],
            files: vec![FileHash {
                path: "c.yml".into(),
                digest: "sha256:aa".into(),
            }],
            local_world_size: 2,
            ips: vec!["10.0.0.1".into()],
            start_port: 6070,
            job_id: "default".into(),
            secret_proof: None,
        };
        let mut b = a.clone();
        assert!(differences(&a, &b).is_empty());
        b.files[0].digest = "sha256:bb".into();
        b.local_world_size = 1;
        let d = differences(&a, &b);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(
            d.iter()
                .any(|l| l.contains("c.yml") && l.contains("sha256:bb"))
        );
    }
}
