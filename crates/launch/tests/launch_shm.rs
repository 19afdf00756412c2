//! The job's `/dev/shm` files (the ranks' and the launcher's progress board) do not outlive a
//! SIGKILLed launcher: its sentinel removes them, and when the sentinel could not (killed too),
//! the next job on the host removes them at start.

mod common;

use common::*;
use std::path::PathBuf;

/// A worker that creates its rank's `/dev/shm` file as the collective names it
/// (`ringdet-<sha256(token, endpoints)[..8]>-<rank>`), records its path and pid, then waits.
const SHM_WORKER: &str = "tag=$(printf %s \"$RINGDET_JOB_TOKEN$(printf %s \"$RINGDET_ENDPOINTS\" | tr -d ,)\" \
     | sha256sum | cut -c1-16); f=/dev/shm/ringdet-$tag-$RINGDET_RANK; : > $f; \
     echo $f > shm.$RINGDET_RANK.tmp; mv shm.$RINGDET_RANK.tmp shm.$RINGDET_RANK; \
     echo $$ > pid.$RINGDET_RANK.tmp; mv pid.$RINGDET_RANK.tmp pid.$RINGDET_RANK; exec sleep 60";

/// Files removed when the test ends, whatever happened.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Starts a two-worker job on one host; returns it, its workers' pids and their shm files.
fn start_job(dir: &std::path::Path, port: u16) -> (Launcher, Vec<u32>, Cleanup) {
    let launcher = start(
        dir,
        "127.0.0.1",
        "127.0.0.1",
        port,
        &["--nproc_per_node", "2"],
        &["sh", "-c", SHM_WORKER],
    );
    let pids = vec![read_pid(dir, "pid.0", 20.0), read_pid(dir, "pid.1", 20.0)];
    let mut files = (0..2)
        .map(|rank| {
            let name = format!("shm.{rank}");
            read_pid_like(dir, &name)
        })
        .collect::<Vec<_>>();
    // The launcher's progress board (heartbeats) goes with the job's files.
    files.push(ringdet_launch::job_files::progress_path(
        launcher.child.id(),
    ));
    for file in &files {
        assert!(file.exists(), "{} was not created", file.display());
    }
    (launcher, pids, Cleanup(files))
}

/// The path a worker wrote in `dir/name` (written before its pid file, so present).
fn read_pid_like(dir: &std::path::Path, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(dir.join(name)).unwrap();
    PathBuf::from(text.trim())
}

/// Waits until none of `files` exists, at most `secs`; returns those left.
fn wait_removed(files: &[PathBuf], secs: f64) -> Vec<PathBuf> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs_f64(secs);
    loop {
        let left: Vec<PathBuf> = files.iter().filter(|f| f.exists()).cloned().collect();
        if left.is_empty() || std::time::Instant::now() > until {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn the_sentinel_removes_the_jobs_shm_files_when_the_launcher_is_sigkilled() {
    let dir = scratch("shm-sentinel");
    let (mut launcher, pids, files) = start_job(&dir, 24500);
    launcher.child.kill().unwrap();
    launcher.child.wait().unwrap();
    assert_eq!(wait_gone(&pids, 10.0), Vec::<u32>::new());
    assert_eq!(wait_removed(&files.0, 10.0), Vec::<PathBuf>::new());
}

#[test]
fn a_new_job_removes_the_shm_files_of_a_dead_job() {
    let dir = scratch("shm-stale");
    let (mut launcher, pids, files) = start_job(&dir, 24510);
    // Kill the sentinel first (the launcher's child that is not a worker), then the launcher:
    // nobody is left to remove the files.
    let lpid = launcher.child.id();
    let children = std::fs::read_to_string(format!("/proc/{lpid}/task/{lpid}/children")).unwrap();
    let sentinel: Vec<u32> = children
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .filter(|p| !pids.contains(p))
        .collect();
    assert_eq!(sentinel.len(), 1, "children {children}, workers {pids:?}");
    // SAFETY: kill(2) on a child of a child of this test.
    unsafe { libc::kill(sentinel[0] as i32, libc::SIGKILL) };
    assert_eq!(wait_gone(&sentinel, 10.0), Vec::<u32>::new());
    launcher.child.kill().unwrap();
    launcher.child.wait().unwrap();
    assert_eq!(wait_gone(&pids, 10.0), Vec::<u32>::new());
    assert!(files.0.iter().all(|f| f.exists()), "left by the dead job");
    let mut next = start(
        &dir,
        "127.0.0.1",
        "127.0.0.1",
        24520,
        &["--nproc_per_node", "1"],
        &["true"],
    );
    assert_eq!(next.wait(30.0).code(), Some(0), "{}", next.stderr());
    assert_eq!(wait_removed(&files.0, 1.0), Vec::<PathBuf>::new());
}
