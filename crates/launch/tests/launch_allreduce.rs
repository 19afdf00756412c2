//! `ringdet launch` running `ringdet allreduce-perf` end to end: 2 loopback hosts x 2 workers,
//! ranks joined through RINGDET_* (endpoints and job token), every result checked by the worker.

mod common;

use common::*;
use std::process::{Command, Stdio};

#[test]
fn two_hosts_by_two_workers_run_allreduce_perf() {
    let dir = scratch("allreduce");
    let port = 24400;
    let launch = |host: &str| {
        let out = std::fs::File::create(dir.join(format!("out-{host}"))).unwrap();
        let err = std::fs::File::create(dir.join(format!("err-{host}"))).unwrap();
        let child = Command::new(BIN)
            .current_dir(&dir)
            .args([
                "launch",
                "--ips",
                TWO_HOSTS,
                "--host",
                host,
                "--nproc_per_node",
                "2",
            ])
            .args([
                "--start_port",
                &port.to_string(),
                "--log_dir",
                &format!("log-{host}"),
            ])
            // The ringdet-subcommand form: the launcher runs its own binary as the worker.
            .args([
                "allreduce-perf",
                "-b",
                "1K",
                "-e",
                "256K",
                "-f",
                "16",
                "-n",
                "3",
                "-w",
                "1",
            ])
            .env_remove("RINGDET_JOB_SECRET")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        Launcher {
            child,
            host: host.to_string(),
            dir: dir.clone(),
        }
    };
    let (mut h0, mut h1) = (launch("127.0.0.1"), launch("127.0.0.2"));
    let (s0, s1) = (h0.wait(60.0), h1.wait(60.0));
    assert!(
        s0.success() && s1.success(),
        "{}\n{}",
        h0.stderr(),
        h1.stderr()
    );
    let console = h0.stdout();
    assert!(
        console.contains("[r0] # ringdet allreduce-perf: 4 ranks"),
        "{console}"
    );
    let rows: Vec<&str> = console
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|w| w.chars().all(|c| c.is_ascii_digit()))
        })
        .collect();
    assert_eq!(rows.len(), 3, "sizes 1K, 16K, 256K:\n{console}");
    for row in rows {
        assert_eq!(
            row.split_whitespace().last(),
            Some("0"),
            "wrong results: {row}"
        );
    }
}

/// Pids of `launcher`'s worker children, by their RINGDET_RANK.
fn workers_of(launcher: u32) -> Vec<(usize, u32)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat[stat.rfind(')').unwrap() + 1..]
            .split_whitespace()
            .nth(1);
        if ppid != Some(launcher.to_string().as_str()) {
            continue;
        }
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let rank = String::from_utf8_lossy(&environ)
            .split('\0')
            .find_map(|kv| {
                kv.strip_prefix("RINGDET_RANK=")
                    .and_then(|r| r.parse().ok())
            });
        if let Some(rank) = rank {
            found.push((rank, pid));
        }
    }
    found
}

#[test]
fn a_rank_killed_during_allreduce_stops_every_host() {
    let dir = scratch("allreduce-kill");
    // Enough iterations to still be running when the rank is killed.
    let perf = [
        "allreduce-perf",
        "-b",
        "4K",
        "-e",
        "4K",
        "-n",
        "100000000",
        "-w",
        "1",
    ];
    let launch = |host: &str| {
        let err = std::fs::File::create(dir.join(format!("err-{host}"))).unwrap();
        let child = Command::new(BIN)
            .current_dir(&dir)
            .args([
                "launch",
                "--ips",
                TWO_HOSTS,
                "--host",
                host,
                "--nproc_per_node",
                "2",
            ])
            .args(["--start_port", "24410", "--log_dir", &format!("log-{host}")])
            .args(perf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap();
        Launcher {
            child,
            host: host.to_string(),
            dir: dir.clone(),
        }
    };
    let (mut h0, mut h1) = (launch("127.0.0.1"), launch("127.0.0.2"));
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let (mut first, mut second) = (Vec::new(), Vec::new());
    while (first.len() < 2 || second.len() < 2) && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(50));
        first = workers_of(h0.child.id());
        second = workers_of(h1.child.id());
    }
    assert_eq!((first.len(), second.len()), (2, 2), "workers did not start");
    // Let the ring run, then kill rank 3 in the middle of its all-reduces.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let victim = second.iter().find(|(rank, _)| *rank == 3).unwrap().1;
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    let (s0, s1) = (h0.wait(10.0), h1.wait(10.0));
    let (e0, e1) = (h0.stderr(), h1.stderr());
    let root = |err: &str| {
        err.lines()
            .find(|l| l.contains("root cause"))
            .map(String::from)
    };
    assert!(root(&e0).is_some() && root(&e0) == root(&e1), "{e0}\n{e1}");
    assert!(
        s0.code().is_some_and(|c| c != 0) && s0.code() == s1.code(),
        "{e0}\n{e1}"
    );
    let pids: Vec<u32> = first.iter().chain(&second).map(|(_, pid)| *pid).collect();
    assert_eq!(wait_gone(&pids, 10.0), Vec::<u32>::new());
}

#[test]
fn allreduce_perf_starts_its_own_ranks_through_the_launcher() {
    let dir = scratch("allreduce-nproc");
    let out = Command::new(BIN)
        .current_dir(&dir)
        .args([
            "allreduce-perf",
            "--nproc",
            "2",
            "-b",
            "1K",
            "-e",
            "16K",
            "-f",
            "16",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Rank 0's table, shown as is (no `[r0]` prefix), two sizes, no wrong element.
    assert!(
        stdout.starts_with("# ringdet allreduce-perf: 2 ranks"),
        "{stdout}"
    );
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .skip(1)
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(
        rows.iter()
            .all(|r| r.split_whitespace().last() == Some("0")),
        "{stdout}"
    );
    // The launcher wrote no log directory here.
    assert!(!dir.join("log").exists());
}

#[test]
fn allreduce_perf_ranks_that_fail_are_reported_with_their_log() {
    let dir = scratch("allreduce-nproc-fail");
    let out = Command::new(BIN)
        .current_dir(&dir)
        .args(["allreduce-perf", "--nproc", "2", "--dtype", "f7"])
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("root cause (first failure): rank ") && stderr.contains("--dtype f7"),
        "{stderr}"
    );
}
