//! `ringdet launch` when things go wrong, on loopback hosts: a worker killed with SIGKILL, a
//! launcher killed with SIGKILL, a worker's non-zero exit, Ctrl-C once and twice. Every host
//! must stop within bounds, name the root cause and leave no process behind.

mod common;

use common::*;

const SH: &str = "sh";

#[test]
fn a_worker_killed_by_sigkill_stops_every_host_with_its_code() {
    let dir = scratch("kill-worker");
    let worker = [SH, "-c", RECORDING_WORKER];
    let mut h0 = start(
        &dir,
        TWO_HOSTS,
        "127.0.0.1",
        24200,
        &["--nproc_per_node", "2"],
        &worker,
    );
    let mut h1 = start(
        &dir,
        TWO_HOSTS,
        "127.0.0.2",
        24200,
        &["--nproc_per_node", "2"],
        &worker,
    );
    let pids: Vec<u32> = (0..4)
        .flat_map(|r| {
            [
                read_pid(&dir, &format!("pid.{r}"), 20.0),
                read_pid(&dir, &format!("gc.{r}"), 20.0),
            ]
        })
        .collect();
    // Rank 3 (second worker of the second host) "runs out of memory".
    unsafe { libc::kill(pids[6] as i32, libc::SIGKILL) };
    let (s0, s1) = (h0.wait(10.0), h1.wait(10.0));
    assert_eq!(
        (s0.code(), s1.code()),
        (Some(137), Some(137)),
        "{}\n{}",
        h0.stderr(),
        h1.stderr()
    );
    for launcher in [&h0, &h1] {
        let err = launcher.stderr();
        assert!(
            err.contains(
                "root cause (first failure): rank 3 (local rank 1) on host 127.0.0.2 (node 1)"
            ),
            "{err}"
        );
        assert!(
            err.contains("SIGKILL") && err.contains("out of memory?"),
            "{err}"
        );
        assert!(
            err.contains("worker 3 ready"),
            "the failed rank's log tail is shown on every host:\n{err}"
        );
    }
    assert_eq!(
        wait_gone(&pids, 10.0),
        Vec::<u32>::new(),
        "workers or their children survived"
    );
}

#[test]
fn a_launcher_killed_by_sigkill_takes_its_workers_and_stops_the_other_host() {
    let dir = scratch("kill-launcher");
    let worker = [SH, "-c", RECORDING_WORKER];
    let mut h0 = start(
        &dir,
        TWO_HOSTS,
        "127.0.0.1",
        24210,
        &["--nproc_per_node", "2"],
        &worker,
    );
    let mut h1 = start(
        &dir,
        TWO_HOSTS,
        "127.0.0.2",
        24210,
        &["--nproc_per_node", "2"],
        &worker,
    );
    let pid = |name: &str| read_pid(&dir, name, 20.0);
    let second_host = [pid("pid.2"), pid("gc.2"), pid("pid.3"), pid("gc.3")];
    let first_host = [pid("pid.0"), pid("gc.0"), pid("pid.1"), pid("gc.1")];
    h1.child.kill().unwrap(); // SIGKILL
    h1.child.wait().unwrap();
    assert_eq!(
        wait_gone(&second_host, 2.0),
        Vec::<u32>::new(),
        "orphans of the killed launcher"
    );
    let status = h0.wait(10.0);
    let err = h0.stderr();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("the launcher on host 127.0.0.2 (node 1) was lost"),
        "{err}"
    );
    assert_eq!(wait_gone(&first_host, 10.0), Vec::<u32>::new());
}

#[test]
fn a_failing_worker_returns_its_code_and_the_tail_of_its_log() {
    let dir = scratch("exit-code");
    let script = "echo $$ > pid.$RINGDET_RANK; \
                  if [ $RINGDET_RANK = 1 ]; then sleep 0.2; i=1; while [ $i -le 40 ]; do echo line $i; i=$((i+1)); done; exit 3; fi; \
                  echo hello from rank $RINGDET_RANK; sleep 60";
    let mut solo = start(
        &dir,
        "127.0.0.1",
        "127.0.0.1",
        24220,
        &["--nproc_per_node", "2"],
        &[SH, "-c", script],
    );
    let status = solo.wait(15.0);
    let err = solo.stderr();
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(
        err.contains("rank 1 (local rank 1) on host 127.0.0.1 (node 0)")
            && err.contains("exit code 3"),
        "{err}"
    );
    assert!(
        err.contains("last 30 lines of")
            && err.contains("| line 11\n")
            && err.contains("| line 40\n"),
        "{err}"
    );
    assert!(
        !err.contains("| line 10\n"),
        "more than 30 lines shown:\n{err}"
    );
    assert!(
        solo.stdout().contains("[r0] hello from rank 0"),
        "{}",
        solo.stdout()
    );
    assert!(!solo.stdout().contains("line 40"), "only rank 0 is echoed");
    let pids = [read_pid(&dir, "pid.0", 1.0), read_pid(&dir, "pid.1", 1.0)];
    assert_eq!(wait_gone(&pids, 5.0), Vec::<u32>::new());
}

#[test]
fn ctrl_c_stops_the_job_cleanly() {
    let dir = scratch("ctrl-c");
    let mut solo = start(
        &dir,
        "127.0.0.1",
        "127.0.0.1",
        24230,
        &["--nproc_per_node", "2"],
        &[SH, "-c", RECORDING_WORKER],
    );
    let pids: Vec<u32> = (0..2)
        .flat_map(|r| {
            [
                read_pid(&dir, &format!("pid.{r}"), 20.0),
                read_pid(&dir, &format!("gc.{r}"), 20.0),
            ]
        })
        .collect();
    unsafe { libc::kill(solo.child.id() as i32, libc::SIGINT) };
    let status = solo.wait(10.0);
    assert_eq!(status.code(), Some(130), "{}", solo.stderr());
    assert!(
        solo.stderr().contains("interrupted by SIGINT"),
        "{}",
        solo.stderr()
    );
    assert_eq!(wait_gone(&pids, 5.0), Vec::<u32>::new());
}

#[test]
fn a_second_ctrl_c_kills_workers_that_ignore_sigterm() {
    let dir = scratch("ctrl-c-twice");
    let script = format!("trap '' TERM; {RECORDING_WORKER}");
    let extra = ["--nproc_per_node", "2", "--grace_period", "60"];
    let mut h0 = start(
        &dir,
        TWO_HOSTS,
        "127.0.0.1",
        24240,
        &extra,
        &[SH, "-c", &script],
    );
    let mut h1 = start(
        &dir,
        TWO_HOSTS,
        "127.0.0.2",
        24240,
        &extra,
        &[SH, "-c", &script],
    );
    let pids: Vec<u32> = (0..4)
        .flat_map(|r| {
            [
                read_pid(&dir, &format!("pid.{r}"), 20.0),
                read_pid(&dir, &format!("gc.{r}"), 20.0),
            ]
        })
        .collect();
    let launcher = h1.child.id() as i32;
    unsafe { libc::kill(launcher, libc::SIGINT) };
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        pids.iter().all(|&p| alive(p)),
        "SIGTERM is ignored, so the grace period is running"
    );
    unsafe { libc::kill(launcher, libc::SIGINT) };
    assert_eq!(h1.wait(5.0).code(), Some(130), "{}", h1.stderr());
    assert_eq!(
        wait_gone(&pids[4..], 2.0),
        Vec::<u32>::new(),
        "second host's workers"
    );
    // The first host got the abort and is still in its 60 s grace period: interrupt it twice too.
    for _ in 0..2 {
        unsafe { libc::kill(h0.child.id() as i32, libc::SIGINT) };
        // Two signals sent back to back may merge into one: leave the handler time to run.
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(h0.wait(5.0).code(), Some(130), "{}", h0.stderr());
    assert!(
        h0.stderr()
            .contains("127.0.0.2 (node 1) was interrupted by SIGINT"),
        "{}",
        h0.stderr()
    );
    assert_eq!(wait_gone(&pids, 2.0), Vec::<u32>::new());
}
