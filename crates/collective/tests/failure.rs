//! Failures: a killed rank process makes every survivor fail within 10 s with an error naming
//! it; `abort()` unblocks a waiting operation; a silent peer hits the data deadline.

mod common;

use common::{TOKEN, config, run_ranks};
use ringdet_collective::worker_env::Placement;
use ringdet_collective::{CommError, Config, ReduceOp};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn crossbeam_channel() -> (mpsc::SyncSender<()>, std::sync::Mutex<mpsc::Receiver<()>>) {
    let (tx, rx) = mpsc::sync_channel(1);
    (tx, std::sync::Mutex::new(rx))
}

/// One rank process: all-reduces until something fails, printing `READY` and then `RESULT ...`.
const WORKER_EXE: &str = env!("CARGO_BIN_EXE_ringdet-collective-test-worker");

/// Rank `rank` of `n` CPU ranks on one host, as a launcher would place it.
fn placement(rank: usize, n: usize, endpoints: &[SocketAddr]) -> Placement<'_> {
    Placement {
        rank,
        local_rank: rank,
        local_world_size: n,
        node_rank: 0,
        nnodes: 1,
        endpoints,
        job_token: "kill-test",
        job_id: "failure-test",
        gpu_ordinal: None,
        log_dir: Path::new("."),
    }
}

#[test]
fn killed_rank_makes_every_survivor_fail_naming_it() {
    // The TCP ring alone; the default, where the ranks of this one host reduce 4 MiB by reading
    // each other's memory; and 4 KiB through the host's shared-memory slots.
    kill_one_rank("0", 1 << 20);
    kill_one_rank("1", 1 << 20);
    kill_one_rank("1", 1 << 10);
}

fn kill_one_rank(hierarchical: &str, len: usize) {
    let n = 4;
    let victim = 2;
    let (ls, eps) = common::listeners(&["127.0.0.1"], n);
    drop(ls);
    let (tx, rx) = mpsc::channel();
    let mut children = Vec::new();
    for r in 0..n {
        let mut child = Command::new(WORKER_EXE)
            .arg(len.to_string())
            .envs(placement(r, n, &eps).vars())
            .env("RINGDET_DATA_TIMEOUT_S", "60")
            .env("RINGDET_HANDSHAKE_TIMEOUT_S", "20")
            .env("RINGDET_HIERARCHICAL", hierarchical)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn worker");
        let out = child.stdout.take().expect("stdout");
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line == "READY" || line.starts_with("RESULT ") {
                    let _ = tx.send((r, line, Instant::now()));
                }
            }
        });
        children.push(child);
    }
    let mut ready = 0;
    while ready < n {
        let (r, line, _) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("workers start");
        assert!(line == "READY", "rank {r} before the kill: {line}");
        ready += 1;
    }
    children[victim].kill().expect("kill");
    let killed_at = Instant::now();
    let mut results = Vec::new();
    while results.len() < n - 1 {
        let (r, line, at) = rx
            .recv_timeout(Duration::from_secs(15))
            .expect("survivors report");
        results.push((r, line, at - killed_at));
    }
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    // The killed rank could not remove its shared-memory files; a launcher does this.
    let removed =
        ringdet_collective::remove_host_files(b"kill-test", &eps).expect("clean /dev/shm");
    assert!(
        hierarchical == "0" || removed >= 1,
        "the victim's files were left: {removed}"
    );
    for (r, line, after) in results {
        println!("hierarchical={hierarchical} len={len}: rank {r} after {after:?}: {line}");
        assert_ne!(r, victim);
        assert!(after < Duration::from_secs(10), "rank {r} took {after:?}");
        assert!(
            line.contains(&format!("rank {victim} ")),
            "rank {r}: {line}"
        );
        assert!(line.contains("all_reduce #"), "rank {r}: {line}");
    }
}

/// One host with the host paths on (shared-memory slots for small buffers).
fn host_config() -> Config {
    Config {
        hierarchical: true,
        ..config()
    }
}

#[test]
fn abort_unblocks_a_waiting_operation() {
    abort_unblocks(config(), 1 << 18);
    abort_unblocks(host_config(), 1 << 10);
}

fn abort_unblocks(cfg: Config, len: usize) {
    let (tx, rx) = crossbeam_channel();
    let out = run_ranks(2, cfg, |r, c| {
        if r == 1 {
            // Never joins the all-reduce; waits until rank 0 is done.
            let _ = rx.lock().map(|rx| rx.recv_timeout(Duration::from_secs(20)));
            return Ok(None);
        }
        let handle = c.abort_handle();
        let aborter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            handle.abort();
        });
        let t = Instant::now();
        let res = c.all_reduce(&mut vec![0f32; len], ReduceOp::Sum);
        let took = t.elapsed();
        aborter.join().expect("aborter");
        let _ = tx.clone().send(());
        let later = c.barrier();
        Ok(Some((res, took, later)))
    });
    let (res, took, later) = out
        .into_iter()
        .next()
        .expect("rank 0")
        .expect("ok")
        .expect("some");
    assert!(matches!(res, Err(CommError::Aborted { .. })), "{res:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(later.is_err(), "operations after abort fail too");
}

#[test]
fn a_neighbour_that_aborts_is_named_by_the_others() {
    neighbour_aborts(config(), 100_000);
    neighbour_aborts(host_config(), 1000);
}

fn neighbour_aborts(cfg: Config, len: usize) {
    let out = run_ranks(3, cfg, |r, c| {
        if r == 0 {
            std::thread::sleep(Duration::from_millis(200));
            c.abort();
            return Ok(None);
        }
        let t = Instant::now();
        let res = c.all_reduce(&mut vec![1i64; len], ReduceOp::Sum);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        Ok(Some(res))
    });
    for (r, res) in out.into_iter().enumerate().skip(1) {
        let e = res.expect("thread").expect("some").expect_err("must fail");
        assert_eq!(e.failed_rank(), Some(0), "rank {r}: {e}");
    }
}

/// A rank that closes its communicator after the last operation it shares with the others is
/// no failure of that operation; a later one that needs it fails naming it as having left.
#[test]
fn a_rank_that_leaves_after_its_last_operation_is_named_as_left() {
    let out = run_ranks(3, config(), |r, c| {
        let mut v = vec![1i64; 10_000];
        c.all_reduce(&mut v, ReduceOp::Sum)?;
        assert!(v.iter().all(|&x| x == 3));
        if r == 2 {
            return Ok(None); // the communicator closes here
        }
        std::thread::sleep(Duration::from_millis(200));
        Ok(Some(c.all_reduce(&mut v, ReduceOp::Sum)))
    });
    // rank 0 receives from rank 2, the one that left
    for (r, res) in out.into_iter().enumerate().take(2) {
        let e = res
            .expect("first all-reduce")
            .expect("some")
            .expect_err("must fail");
        assert_eq!(e.failed_rank(), Some(2), "rank {r}: {e}");
        if r == 0 {
            assert!(e.to_string().contains("left the job"), "rank 0: {e}");
        }
    }
}

#[test]
fn abort_unblocks_the_sender_thread_path() {
    let cfg = Config {
        sender_thread_bytes: 0,
        ..config()
    };
    let (tx, rx) = crossbeam_channel();
    let out = run_ranks(2, cfg, |r, c| {
        if r == 1 {
            let _ = rx.lock().map(|rx| rx.recv_timeout(Duration::from_secs(20)));
            return Ok(None);
        }
        let handle = c.abort_handle();
        let aborter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            handle.abort();
        });
        let t = Instant::now();
        // Large enough that the sender blocks on a full socket.
        let res = c.all_reduce(&mut vec![0f32; 16 << 20], ReduceOp::Sum);
        let took = t.elapsed();
        aborter.join().expect("aborter");
        let _ = tx.clone().send(());
        Ok(Some((res, took)))
    });
    let (res, took) = out
        .into_iter()
        .next()
        .expect("rank 0")
        .expect("ok")
        .expect("some");
    assert!(matches!(res, Err(CommError::Aborted { .. })), "{res:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn a_silent_peer_hits_the_data_deadline() {
    let cfg = Config {
        data_timeout: Duration::from_millis(700),
        ..config()
    };
    let (tx, rx) = crossbeam_channel();
    let out = run_ranks(2, cfg, |r, c| {
        if r == 1 {
            let _ = rx.lock().map(|rx| rx.recv_timeout(Duration::from_secs(20)));
            return Ok(None);
        }
        let res = c.broadcast(&mut [0u8; 10], 1);
        let _ = tx.clone().send(());
        Ok(Some(res))
    });
    let res = out
        .into_iter()
        .next()
        .expect("rank 0")
        .expect("ok")
        .expect("some");
    match res {
        Err(CommError::Timeout { rank: 1, .. }) => {}
        other => panic!("expected a timeout naming rank 1, got {other:?}"),
    }
    let _ = TOKEN;
}
