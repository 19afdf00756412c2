//! `ringdet launch` refusing to start, with a clear message and no hang: a taken port, a host
//! that never comes, hosts with different configs, an unknown flag, an `--ips` list without
//! this machine.

mod common;

use common::*;
use std::net::TcpListener;
use std::process::Command;

#[test]
fn a_taken_port_is_named_with_the_process_holding_it() {
    let dir = scratch("taken-port");
    let _held = TcpListener::bind("127.0.0.2:24301").unwrap();
    let extra = ["--nproc_per_node", "2"];
    let mut h0 = start(&dir, TWO_HOSTS, "127.0.0.1", 24300, &extra, &["true"]);
    let mut h1 = start(&dir, TWO_HOSTS, "127.0.0.2", 24300, &extra, &["true"]);
    let (s0, s1) = (h0.wait(20.0), h1.wait(20.0));
    let holder = format!("held by pid {}", std::process::id());
    for (status, launcher) in [(s0, &h0), (s1, &h1)] {
        let err = launcher.stderr();
        assert_eq!(status.code(), Some(1), "{err}");
        assert!(
            err.contains("127.0.0.2 (node 1): port 24301 on 127.0.0.2 is not free")
                && err.contains(&holder),
            "{err}"
        );
    }
    assert!(h0.worker_log(0).is_empty(), "no worker may start");
}

#[test]
fn a_host_that_never_starts_is_named_when_the_start_times_out() {
    let dir = scratch("missing-host");
    let extra = ["--nproc_per_node", "1", "--start_timeout", "1.5"];
    // The first host waits for the second; on another "cluster" the second waits for a first.
    let mut first = start(&dir, TWO_HOSTS, "127.0.0.1", 24310, &extra, &["true"]);
    let mut second = start(
        &dir,
        "127.0.0.3,127.0.0.2",
        "127.0.0.2",
        24320,
        &extra,
        &["true"],
    );
    let (s0, s1) = (first.wait(15.0), second.wait(15.0));
    assert_eq!(s0.code(), Some(1));
    assert!(
        first
            .stderr()
            .contains("timed out after 2 s waiting for the launchers of 127.0.0.2 (node 1)"),
        "{}",
        first.stderr()
    );
    assert_eq!(s1.code(), Some(1));
    assert!(
        second
            .stderr()
            .contains("could not reach the first host's launcher at 127.0.0.3:24319"),
        "{}",
        second.stderr()
    );
}

#[test]
fn hosts_with_different_configs_do_not_start() {
    let dir = scratch("same-job");
    for (host, optimizer) in [("h0", "momentum: 0.9"), ("h1", "momentum: 0.8")] {
        let configs = dir.join(host).join("configs/_base_");
        std::fs::create_dir_all(&configs).unwrap();
        std::fs::write(
            dir.join(host).join("configs/job.yml"),
            "_BASE_: [\n  './_base_/optimizer.yml',\n]\nepoch: 3\n",
        )
        .unwrap();
        std::fs::write(configs.join("optimizer.yml"), format!("{optimizer}\n")).unwrap();
    }
    let extra = ["--nproc_per_node", "1"];
    let worker = ["true", "-c", "configs/job.yml"];
    let mut h0 = start(
        &dir.join("h0"),
        TWO_HOSTS,
        "127.0.0.1",
        24330,
        &extra,
        &worker,
    );
    let mut h1 = start(
        &dir.join("h1"),
        TWO_HOSTS,
        "127.0.0.2",
        24330,
        &extra,
        &worker,
    );
    let (s0, s1) = (h0.wait(20.0), h1.wait(20.0));
    for (status, launcher) in [(s0, &h0), (s1, &h1)] {
        let err = launcher.stderr();
        assert_eq!(status.code(), Some(1), "{err}");
        assert!(err.contains("127.0.0.2 (node 1) differs from the first host: config configs/_base_/optimizer.yml: sha256:"), "{err}");
        assert!(
            !err.contains("config configs/job.yml"),
            "the including file is equal:\n{err}"
        );
    }
}

#[test]
fn an_unknown_flag_is_an_error_with_a_suggestion() {
    let out = Command::new(BIN)
        .args(["launch", "--gpu", "0,1", "allreduce-perf"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("unexpected argument '--gpu'") && err.contains("'--gpus'"),
        "{err}"
    );
}

#[test]
fn ips_without_this_machine_are_an_error_listing_the_interfaces() {
    let out = Command::new(BIN)
        .args([
            "launch",
            "--ips",
            "198.51.100.1,198.51.100.2",
            "--start_timeout",
            "5",
            "--",
            "true",
        ])
        .env_remove("POD_IP")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("none of --ips 198.51.100.1,198.51.100.2 is an address of this machine")
            && err.contains("=127.0.0.1"),
        "{err}"
    );
}
