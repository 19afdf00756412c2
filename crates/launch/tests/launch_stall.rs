//! A worker that stops making progress (SIGSTOP) is named as the root cause, as stopped, within
//! the stall limit, and the stop messages name the ranks.

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
