//! Helpers for the launcher's end-to-end tests: several "hosts" on loopback (127.0.0.1,
//! 127.0.0.2, ...), each a separate `ringdet launch --host` process, with bounded waits.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ringdet");
pub const TWO_HOSTS: &str = "127.0.0.1,127.0.0.2";

/// A fresh directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("launch-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One launcher process and where its output goes.
pub struct Launcher {
    pub child: Child,
    pub host: String,
    pub dir: PathBuf,
}

/// Starts `ringdet launch --ips <ips> --host <host> --start_port <port> --log_dir log-<host> <extra> -- <worker>`
/// in `dir`, stdout and stderr to `out-<host>` / `err-<host>`.
pub fn start(
    dir: &Path,
    ips: &str,
    host: &str,
    port: u16,
    extra: &[&str],
    worker: &[&str],
) -> Launcher {
    start_with(dir, ips, host, port, extra, worker, &[])
}

/// `start` with extra environment variables for the launcher.
pub fn start_with(
    dir: &Path,
    ips: &str,
    host: &str,
    port: u16,
    extra: &[&str],
    worker: &[&str],
    env: &[(&str, &str)],
) -> Launcher {
    let out = std::fs::File::create(dir.join(format!("out-{host}"))).unwrap();
    let err = std::fs::File::create(dir.join(format!("err-{host}"))).unwrap();
    let child = Command::new(BIN)
        .current_dir(dir)
        .args([
            "launch",
            "--ips",
            ips,
            "--host",
            host,
            "--start_port",
            &port.to_string(),
        ])
        .args(["--log_dir", &format!("log-{host}")])
        .args(extra)
        .arg("--")
        .args(worker)
        .env_remove("RINGDET_JOB_SECRET")
        .env_remove("FLAGS_START_PORT")
        .env_remove("POD_IP")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap();
    Launcher {
        child,
        host: host.to_string(),
        dir: dir.to_path_buf(),
    }
}

impl Launcher {
    /// Waits for the launcher to exit, at most `secs`; panics (after killing it) if it does not.
    pub fn wait(&mut self, secs: f64) -> ExitStatus {
        let until = Instant::now() + Duration::from_secs_f64(secs);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "launcher {} still running after {secs} s; stderr:\n{}",
                    self.host,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("out-{}", self.host))).unwrap_or_default()
    }
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("err-{}", self.host))).unwrap_or_default()
    }
    /// `workerlog.<rank>` of this launcher.
    pub fn worker_log(&self, rank: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("log-{}/workerlog.{rank}", self.host)))
            .unwrap_or_default()
    }
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            stat.rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next())
                != Some("Z")
        }
        Err(_) => false,
    }
}

/// Waits until none of `pids` is alive, at most `secs`; returns the survivors.
pub fn wait_gone(pids: &[u32], secs: f64) -> Vec<u32> {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() || Instant::now() > until {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `dir/name` holds a pid (written by a worker), at most `secs`.
pub fn read_pid(dir: &Path, name: &str, secs: f64) -> u32 {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    loop {
        if let Ok(text) = std::fs::read_to_string(dir.join(name))
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(Instant::now() < until, "no pid in {name} after {secs} s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A worker shell script that records its pid (`pid.<rank>`) and a background child's
/// (`gc.<rank>`, to check grandchildren die too), then waits.
/// It prints `worker <rank> ready` before any pid file exists.
pub const RECORDING_WORKER: &str = "echo worker $RINGDET_RANK ready; \
     sleep 60 & echo $! > gc.$RINGDET_RANK.tmp; mv gc.$RINGDET_RANK.tmp gc.$RINGDET_RANK; \
     echo $$ > pid.$RINGDET_RANK.tmp; mv pid.$RINGDET_RANK.tmp pid.$RINGDET_RANK; wait";

/// `ringdet make-dataset shapes --train T --val V --size 64 --out DATA` (seed 0), asserting it
/// succeeded: the tiny shapes sets the eval, infer and weights tests run on.
pub fn make_tiny_shapes(data: &Path, train: usize, val: usize) {
    let made = Command::new(BIN)
        .args(["make-dataset", "shapes", "--size", "64"])
        .args(["--train", &train.to_string(), "--val", &val.to_string()])
        .arg("--out")
        .arg(data)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
}

/// PaddleDetection's initialisation of the tiny test model (width 0.25, depth 0.33, 7 classes)
/// from `seed`.
pub fn tiny_model(seed: u64) -> ringdet_detect::state::ModelState {
    use ringdet_detect::arch::{Arch, ModelConfig};
    use ringdet_detect::init::{SeededNormal, initialize};
    let arch = Arch::new(ModelConfig::new(0.25, 0.33).with_classes(7)).unwrap();
    let mut state = ringdet_detect::state::ModelState::zeros(&arch).unwrap();
    initialize(&mut state, &mut SeededNormal::new(seed));
    state
}
