//! Heartbeats: a rank that spins forever outside any collective (state R, so the launcher's
//! stopped-process check cannot see it) is named from the progress board within the limit, and
//! the ranks blocked inside the next all-reduce waiting for it are named as its waiters, never as
//! the hung one.

mod common;

use ringdet_collective::progress::{Board, RankProgress, describe_position, find_hung};
use ringdet_collective::worker_env::Placement;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WORKER_EXE: &str = env!("CARGO_BIN_EXE_ringdet-collective-test-worker");

fn board_path() -> PathBuf {
    let dir = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("ringdet-progress-test-{}", std::process::id()))
}

#[test]
fn a_spinning_rank_is_named_and_its_waiters_are_not() {
    let n = 3;
    let (ls, eps) = common::listeners(&["127.0.0.1"], n);
    drop(ls);
    let path = board_path();
    let board = Board::create(&path, n).unwrap();
    let (tx, rx) = mpsc::channel();
    let mut children = Vec::new();
    for r in 0..n {
        let placement = Placement {
            rank: r,
            local_rank: r,
            local_world_size: n,
            node_rank: 0,
            nnodes: 1,
            endpoints: &eps,
            job_token: "progress-test",
            job_id: "progress-test",
            gpu_ordinal: None,
            log_dir: Path::new("."),
        };
        let mut child = Command::new(WORKER_EXE)
            .args(["1024", "spin", "1", "5"])
            .envs(placement.vars())
            .env("RINGDET_PROGRESS_FILE", &path)
            .env("RINGDET_PROGRESS_SLOT", r.to_string())
            .env("RINGDET_HANDSHAKE_TIMEOUT_S", "20")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn worker");
        let out = child.stdout.take().unwrap();
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send((r, line));
            }
        });
        children.push(child);
    }
    // The launcher's loop: sample every 100 ms, measure how long each counter stands still.
    let limit_ms = 2_000;
    let start = Instant::now();
    let mut last: Vec<(u64, Instant)> = vec![(u64::MAX, start); n];
    let mut spinning_since = None;
    let mut named = None;
    while start.elapsed() < Duration::from_secs(30) && named.is_none() {
        while let Ok((r, line)) = rx.try_recv() {
            assert!(!line.starts_with("RESULT"), "rank {r}: {line}");
            if line == "SPINNING" {
                assert_eq!(r, 1);
                spinning_since = Some(Instant::now());
            }
        }
        let now = Instant::now();
        let ranks: Vec<RankProgress> = (0..n)
            .map(|slot| {
                let state = board.read(slot);
                if state.beats != last[slot].0 {
                    last[slot] = (state.beats, now);
                }
                RankProgress {
                    rank: slot,
                    in_op: state.in_op.map(|(kind, id)| (kind.to_string(), id)),
                    completed: state.completed,
                    last_kind: state.last_kind.map(str::to_string),
                    idle_ms: now.duration_since(last[slot].1).as_millis() as u64,
                }
            })
            .collect();
        if let Some(hung) = find_hung(&ranks, limit_ms) {
            named = Some((hung, ranks));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_file(&path);
    let (hung, ranks) = named.expect("no rank named within 30 s");
    assert!(spinning_since.is_some(), "rank 1 never spun");
    assert_eq!(ranks[hung.suspect].rank, 1, "{ranks:?}");
    assert_eq!(hung.waiters, vec![0, 2], "{ranks:?}");
    assert_eq!(describe_position(&ranks[1]), "after all_reduce #4");
    for waiter in [0, 2] {
        assert_eq!(ranks[waiter].in_op, Some(("all_reduce".to_string(), 5)));
    }
}
