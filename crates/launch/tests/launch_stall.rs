//! A worker that stops making progress is named as the root cause within the stall limit: a
//! stopped one (SIGSTOP) as stopped, a running one whose heartbeats stopped outside any
//! collective (an endless loop) as hung, with the ranks that wait for it, on any host; ranks that
//! keep making progress are never named.

mod common;

use common::*;

#[test]
fn a_stopped_rank_is_named_as_the_root_cause_within_the_stall_limit() {
    let dir = scratch("stalled-rank");
    // The limit through the variable (`--stall_timeout 2` is the same).
    let mut launcher = start_with(
        &dir,
        "127.0.0.1",
        "127.0.0.1",
        24600,
        &["--nproc_per_node", "2"],
        &["sh", "-c", RECORDING_WORKER],
        &[("RINGDET_STALL_TIMEOUT", "2")],
    );
    let pids = [read_pid(&dir, "pid.0", 20.0), read_pid(&dir, "pid.1", 20.0)];
    // SAFETY: kill(2) on a worker of this test's launcher.
    unsafe { libc::kill(pids[1] as i32, libc::SIGSTOP) };
    // Stall limit 2 s, then SIGTERM (and SIGCONT) stops both at once: well within 30 s.
    let status = launcher.wait(30.0);
    let err = launcher.stderr();
    assert_eq!(status.code(), Some(1), "{err}");
    let cause = format!(
        "root cause (first failure): rank 1 (local rank 1) on host 127.0.0.1 (node 0), pid {}: stopped",
        pids[1]
    );
    assert!(err.contains(&cause), "{err}");
    assert!(
        err.contains(&format!("rank 1 (pid {}, stopped)", pids[1])),
        "the stop message names the stopped rank: {err}"
    );
    assert_eq!(wait_gone(&pids, 10.0), Vec::<u32>::new());
}

/// The collective's test worker (see crates/collective/src/bin/test_worker.rs).
const TEST_WORKER: &str = env!("CARGO_BIN_EXE_ringdet-launch-test-worker");

#[test]
fn a_rank_spinning_outside_the_collectives_is_named_and_its_waiters_are_not() {
    let dir = scratch("spinning-rank");
    // Rank 1 spins forever (state R: the stopped-process check cannot see it) after 5
    // all-reduces; ranks 0 and 2 wait for it in all_reduce #5 until their data timeout (120 s).
    let mut launcher = start(
        &dir,
        "127.0.0.1",
        "127.0.0.1",
        24640,
        &["--nproc_per_node", "3", "--stall_timeout", "3"],
        &[TEST_WORKER, "256", "spin", "1", "5"],
    );
    let status = launcher.wait(40.0);
    let err = launcher.stderr();
    assert_eq!(status.code(), Some(1), "{err}");
    let cause = "root cause (first failure): rank 1 (local rank 1) on host 127.0.0.1 (node 0)";
    assert!(err.contains(cause), "{err}");
    assert!(
        err.contains("after all_reduce #4, outside any collective (process state R: running")
            && err.contains("while ranks 0,2 wait in all_reduce #5"),
        "{err}"
    );
    let log = std::fs::read_to_string(dir.join("log-127.0.0.1/workerlog.1")).unwrap();
    assert!(log.contains("SPINNING"), "{log}");
}

#[test]
fn ranks_that_keep_making_progress_are_never_named() {
    let dir = scratch("computing-ranks");
    // Every rank all-reduces back to back for 60 s: beats never stop; nobody is named and the
    // job is stopped only by this test's Ctrl-C after a few stall limits.
    let mut launcher = start(
        &dir,
        "127.0.0.1",
        "127.0.0.1",
        24650,
        &["--nproc_per_node", "2", "--stall_timeout", "2"],
        &[TEST_WORKER, "256"],
    );
    // (A limit of 2 s rather than 1: a loaded machine may pause a rank for a second.)
    let until = std::time::Instant::now() + std::time::Duration::from_secs(8);
    while std::time::Instant::now() < until {
        assert!(
            launcher.child.try_wait().unwrap().is_none(),
            "{}",
            launcher.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // SAFETY: kill(2) on this test's own child.
    unsafe { libc::kill(launcher.child.id() as i32, libc::SIGINT) };
    let status = launcher.wait(30.0);
    let err = launcher.stderr();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(!err.contains("no progress"), "{err}");
}

#[test]
fn a_spinning_rank_on_another_host_is_named_by_every_host() {
    let dir = scratch("spinning-rank-two-hosts");
    // One rank per host: the second host's launcher sees no waiter of its own; the first host
    // judges with both hosts' samples.
    let worker = [TEST_WORKER, "256", "spin", "1", "5"];
    let flags = ["--nproc_per_node", "1", "--stall_timeout", "3"];
    let mut h0 = start(&dir, TWO_HOSTS, "127.0.0.1", 24660, &flags, &worker);
    let mut h1 = start(&dir, TWO_HOSTS, "127.0.0.2", 24660, &flags, &worker);
    let (s0, s1) = (h0.wait(40.0), h1.wait(40.0));
    let (e0, e1) = (h0.stderr(), h1.stderr());
    assert_eq!((s0.code(), s1.code()), (Some(1), Some(1)), "{e0}\n{e1}");
    for err in [e0, e1] {
        assert!(
            err.contains(
                "root cause (first failure): rank 1 (local rank 0) on host 127.0.0.2 (node 1)"
            ) && err.contains("after all_reduce #4, outside any collective")
                && err.contains("while rank 0 waits in all_reduce #5"),
            "{err}"
        );
    }
}

#[test]
fn a_rank_blocked_on_a_lock_is_named_as_sleeping() {
    let dir = scratch("blocked-rank");
    let mut launcher = start(
        &dir,
        "127.0.0.1",
        "127.0.0.1",
        24670,
        &["--nproc_per_node", "2", "--stall_timeout", "2"],
        &[TEST_WORKER, "256", "block", "0", "4"],
    );
    let status = launcher.wait(40.0);
    let err = launcher.stderr();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("root cause (first failure): rank 0 (local rank 0) on host 127.0.0.1")
            && err
                .contains("after all_reduce #3, outside any collective (process state S: sleeping")
            && err.contains("while rank 1 waits in all_reduce #4"),
        "{err}"
    );
}

#[test]
fn a_hung_rank_started_by_a_shell_is_named_too() {
    let dir = scratch("spinning-rank-under-sh");
    // `; true` keeps the shell from exec'ing: the rank is the worker's child, in its group.
    let script = format!("{TEST_WORKER} 256 spin 1 3; true");
    let mut launcher = start(
        &dir,
        "127.0.0.1",
        "127.0.0.1",
        24680,
        &["--nproc_per_node", "2", "--stall_timeout", "2"],
        &["sh", "-c", &script],
    );
    let status = launcher.wait(40.0);
    let err = launcher.stderr();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("root cause (first failure): rank 1 (local rank 1) on host 127.0.0.1")
            && err.contains("while rank 0 waits in all_reduce #3"),
        "{err}"
    );
}
