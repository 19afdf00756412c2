//! Hostile connections to a rank's port during start-up: idle strays, a stray that trickles one
//! byte at a time, garbage and forged hellos. None of them may delay or deny the start of the
//! job, and a stranger that does not hold the job token learns nothing about the job (no
//! version, rank, world size or settings, not even how a refusal is framed) from what the rank
//! sends back: 32 random bytes, then a closed socket.
//!
//! Every stray here stops by itself: bounded in bytes, with read timeouts, and told to stop when
//! the job is up.

mod common;

use common::{TOKEN, config, listeners};
use ringdet_collective::rendezvous::{HANDSHAKE_LIMIT, MAX_PENDING};
use ringdet_collective::wire::frame::VERSION;
use ringdet_collective::wire::handshake::{Hello, Purpose};
use ringdet_collective::{CommError, Communicator, ReduceOp};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Ranks in the test jobs (rank 0 accepts its left neighbour, rank 2).
const WORLD: usize = 3;

/// Start-up deadline of the test jobs; a start-up must take well under half of it.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// Starts `WORLD` ranks on `ls`, all-reduces a buffer of ones, and returns how long the slowest
/// rank took to join (the all-reduce excluded) after checking every sum.
fn start_job(ls: Vec<TcpListener>, eps: &[SocketAddr]) -> Duration {
    let cfg = ringdet_collective::Config {
        handshake_timeout: START_DEADLINE,
        ..config()
    };
    let started = Instant::now();
    let results: Vec<Result<(Vec<f32>, Duration), CommError>> = std::thread::scope(|s| {
        let hs: Vec<_> = ls
            .into_iter()
            .enumerate()
            .map(|(r, l)| {
                let cfg = cfg.clone();
                s.spawn(move || {
                    let mut c = Communicator::from_listener(l, r, eps, TOKEN, cfg)?;
                    let joined = started.elapsed();
                    let mut v = vec![1.0f32; 4096];
                    c.all_reduce(&mut v, ReduceOp::Sum)?;
                    Ok((v, joined))
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("rank thread panicked"))
            .collect()
    });
    let mut slowest = Duration::ZERO;
    for (r, res) in results.into_iter().enumerate() {
        let (v, joined) = res.unwrap_or_else(|e| panic!("rank {r} failed: {e}"));
        assert_eq!(v, vec![WORLD as f32; 4096], "rank {r}");
        slowest = slowest.max(joined);
    }
    slowest
}

#[test]
fn twenty_idle_strays_do_not_delay_start_up() {
    let (ls, eps) = listeners(&["127.0.0.1"], WORLD);
    // Connected before any rank runs, and silent until the job is up.
    let strays: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(eps[0]).expect("stray connects"))
        .collect();
    let took = start_job(ls, &eps);
    assert!(
        took < START_DEADLINE / 2,
        "start-up took {took:?} with 20 idle strays"
    );
    drop(strays);
}

#[test]
fn more_idle_strays_than_handshake_slots_only_delay_start_up_by_one_handshake_limit() {
    let (ls, eps) = listeners(&["127.0.0.1"], WORLD);
    // Past the cap, connections wait in the backlog until the first strays time out.
    let strays: Vec<TcpStream> = (0..MAX_PENDING + 6)
        .map(|_| TcpStream::connect(eps[0]).expect("stray connects"))
        .collect();
    let took = start_job(ls, &eps);
    assert!(
        took < START_DEADLINE / 2,
        "start-up took {took:?} with {} idle strays (handshake limit {HANDSHAKE_LIMIT:?})",
        strays.len()
    );
}

#[test]
fn a_missing_rank_is_still_named_at_the_deadline_among_strays() {
    let (mut ls, eps) = listeners(&["127.0.0.1"], WORLD);
    let l0 = ls.remove(0);
    drop(ls); // ranks 1 and 2 never show up
    let strays: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect(eps[0]).expect("stray connects"))
        .collect();
    let deadline = Duration::from_secs(2);
    let cfg = ringdet_collective::Config {
        handshake_timeout: deadline,
        ..config()
    };
    let started = Instant::now();
    let e = Communicator::from_listener(l0, 0, &eps, TOKEN, cfg)
        .err()
        .expect("must fail");
    let took = started.elapsed();
    let msg = e.to_string();
    assert!(msg.contains("rank 1") || msg.contains("rank 2"), "{msg}");
    assert!(
        took < deadline + Duration::from_secs(2),
        "failed after {took:?}"
    );
    drop(strays);
}

#[test]
fn a_trickling_stray_does_not_delay_start_up() {
    let (ls, eps) = listeners(&["127.0.0.1"], WORLD);
    let target = eps[0];
    let stop = AtomicBool::new(false);
    let took = std::thread::scope(|s| {
        let stop = &stop;
        let trickler = s.spawn(move || {
            let mut stray = TcpStream::connect(target).expect("stray connects");
            // One byte every 200 ms: at most 150 bytes (30 s), until dropped or told to stop.
            for _ in 0..150 {
                if stop.load(Ordering::Relaxed) || stray.write_all(&[0x52]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        // Give the stray a head start so that it is the first connection rank 0 sees.
        std::thread::sleep(Duration::from_millis(300));
        let took = start_job(ls, &eps);
        stop.store(true, Ordering::Relaxed);
        trickler.join().expect("trickler");
        took
    });
    assert!(
        took < START_DEADLINE / 2,
        "start-up took {took:?} with a trickling stray"
    );
}

/// Reads what `s` receives until the peer closes it (or 15 s pass, which fails the test).
fn read_until_closed(s: &mut TcpStream, what: &str) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("read timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while got.len() < 64 << 10 {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("{what}: the rank did not close the socket: {e}"),
        }
    }
    panic!("{what}: the rank sent more than 64 KiB")
}

/// A hello that looks right but for `tweak`, from a stranger that does not hold the token.
fn forged_hello(tweak: impl FnOnce(&mut Hello)) -> [u8; 60] {
    let mut h = Hello {
        version: VERSION as u16,
        purpose: Purpose::Ring,
        stream: 0,
        world_size: WORLD as u32,
        from_rank: (WORLD - 1) as u32,
        to_rank: 0,
        nonce: [7; 32],
        settings: config().fingerprint(),
    };
    tweak(&mut h);
    h.encode()
}

#[test]
fn garbage_and_forged_hellos_get_a_closed_socket_and_learn_nothing() {
    let (ls, eps) = listeners(&["127.0.0.1"], WORLD);
    let target = eps[0];
    let mut garbage = TcpStream::connect(target).expect("connect");
    garbage.write_all(&[0xde; 77]).expect("write garbage");
    let forged: Vec<(&str, [u8; 60])> = vec![
        (
            "a hello of another world size",
            forged_hello(|h| h.world_size = 5),
        ),
        (
            "a hello of another version",
            forged_hello(|h| h.version = 1),
        ),
        ("a hello for another rank", forged_hello(|h| h.to_rank = 1)),
        (
            "a hello with other settings",
            forged_hello(|h| h.settings ^= 1),
        ),
        ("a hello the job expects", forged_hello(|_| {})),
    ];
    let mut strays = Vec::new();
    for (what, hello) in &forged {
        let mut s = TcpStream::connect(target).expect("connect");
        // A made-up nonce and proof of the token, then the hello.
        s.write_all(&[0u8; 64]).expect("write proof");
        s.write_all(hello).expect("write hello");
        strays.push((*what, s));
    }
    // A connector of protocol version 2, which spoke first: its hello, status 0 and a proof.
    let mut old = TcpStream::connect(target).expect("connect");
    old.write_all(&forged_hello(|h| h.version = 2))
        .expect("write hello");
    old.write_all(&[0u8; 33]).expect("write proof");
    strays.push(("a version-2 connector", old));
    let (took, answers) = std::thread::scope(|s| {
        let readers = s.spawn(move || {
            let mut answers = vec![("garbage", read_until_closed(&mut garbage, "garbage"))];
            for (what, mut stray) in strays {
                answers.push((what, read_until_closed(&mut stray, what)));
            }
            answers
        });
        let took = start_job(ls, &eps);
        (took, readers.join().expect("readers"))
    });
    assert!(took < START_DEADLINE / 2, "start-up took {took:?}");
    for (what, answer) in answers {
        let text = String::from_utf8_lossy(&answer).to_lowercase();
        for secret in [
            "version",
            "world",
            "rank",
            "settings",
            "expected",
            "connected",
        ] {
            assert!(
                !text.contains(secret),
                "{what}: a stranger was told about the job: {text:?}"
            );
        }
        // The challenge (32 random bytes) and nothing else, not even a refusal.
        assert_eq!(answer.len(), 32, "{what}: {answer:?}");
    }
}
