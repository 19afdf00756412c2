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
