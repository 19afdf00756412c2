//! Strangers are refused while the job goes on: a wrong job token, a wrong world size, a rank
//! number that is not expected, and plain garbage; a rank started with other tunables is refused
//! by name.

mod common;

use common::{TOKEN, config, listeners};
use ringdet_collective::rendezvous::{Identity, Want, dial};
use ringdet_collective::wire::handshake::Purpose;
use ringdet_collective::{CommError, Communicator, ReduceOp};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn intruder(target: SocketAddr, rank: usize, world: usize, token: &[u8]) -> CommError {
    let me = Identity {
        rank,
        world_size: world,
        token,
        settings: config().fingerprint(),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    match dial(&me, Want::new(0, Purpose::Ring, 0), target, deadline) {
        Ok(_) => panic!("intruder was accepted"),
        Err(e) => e,
    }
}

#[test]
fn strangers_are_refused_and_the_job_completes() {
    let n = 3;
    let (ls, eps) = listeners(&["127.0.0.1"], n);
    let target = eps[0];
    // The strangers connect before the real left neighbour of rank 0 (rank 2) has started.
    let mut garbage = TcpStream::connect(target).expect("connect");
    garbage.write_all(&[0xde; 77]).expect("write garbage");
    drop(garbage);
    let strangers = std::thread::spawn(move || {
        let wrong_token = intruder(target, 2, 3, b"not-the-token");
        let wrong_world = intruder(target, 2, 5, TOKEN);
        let wrong_rank = intruder(target, 1, 3, TOKEN);
        (wrong_token, wrong_world, wrong_rank)
    });
    let strangers = std::sync::Mutex::new(Some(strangers));
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = ls
            .into_iter()
            .enumerate()
            .map(|(r, l)| {
                let (eps, strangers) = (&eps, &strangers);
                s.spawn(move || {
                    if r == 2 {
                        // Rank 0's real left neighbour arrives only after the strangers.
                        let h = strangers
                            .lock()
                            .ok()
                            .and_then(|mut g| g.take())
                            .expect("once");
                        let (wrong_token, wrong_world, wrong_rank) = h.join().expect("strangers");
                        assert!(
                            wrong_token.to_string().contains("job token"),
                            "{wrong_token}"
                        );
                        assert!(
                            wrong_world.to_string().contains("world size 5"),
                            "{wrong_world}"
                        );
                        assert!(
                            wrong_rank.to_string().contains("not expected"),
                            "{wrong_rank}"
                        );
                    }
                    let mut c = Communicator::from_listener(l, r, eps, TOKEN, config())?;
                    let mut v = vec![1.0f32; 1000];
                    c.all_reduce(&mut v, ReduceOp::Sum)?;
                    Ok::<_, CommError>(v)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("rank")).collect()
    });
    for r in results {
        assert_eq!(r.expect("job goes on"), vec![3.0f32; 1000]);
    }
}

#[test]
fn a_rank_with_the_wrong_token_cannot_join() {
    let (ls, eps) = listeners(&["127.0.0.1"], 2);
    let cfg = ringdet_collective::Config {
        handshake_timeout: Duration::from_secs(3),
        ..config()
    };
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = ls
            .into_iter()
            .enumerate()
            .map(|(r, l)| {
                let (eps, cfg) = (&eps, cfg.clone());
                let token: &[u8] = if r == 0 { TOKEN } else { b"another-job" };
                s.spawn(move || Communicator::from_listener(l, r, eps, token, cfg).map(|_| ()))
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("rank")).collect()
    });
    for r in results {
        let e = r.expect_err("mismatched tokens must not connect");
        assert!(matches!(e, CommError::Rendezvous(_)), "{e}");
    }
}

#[test]
fn a_rank_with_other_settings_is_refused_by_name() {
    let (ls, eps) = listeners(&["127.0.0.1"], 2);
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = ls
            .into_iter()
            .enumerate()
            .map(|(r, l)| {
                let cfg = ringdet_collective::Config {
                    handshake_timeout: Duration::from_secs(2),
                    segment_bytes: if r == 0 { 256 << 10 } else { 1 << 20 },
                    ..config()
                };
                let eps = &eps;
                s.spawn(move || Communicator::from_listener(l, r, eps, TOKEN, cfg).map(|_| ()))
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("rank")).collect()
    });
    let msgs: Vec<String> = results
        .into_iter()
        .map(|r| {
            r.expect_err("mismatched settings must not connect")
                .to_string()
        })
        .collect();
    assert!(
        msgs.iter().any(|m| m.contains("other settings")),
        "one rank names the mismatch: {msgs:?}"
    );
}

#[test]
fn missing_ranks_are_named_at_the_deadline() {
    let (mut ls, eps) = listeners(&["127.0.0.1"], 3);
    let l0 = ls.remove(0);
    drop(ls); // ranks 1 and 2 never show up
    let cfg = ringdet_collective::Config {
        handshake_timeout: Duration::from_millis(800),
        ..config()
    };
    let e = Communicator::from_listener(l0, 0, &eps, TOKEN, cfg)
        .err()
        .expect("must fail");
    let msg = e.to_string();
    assert!(msg.contains("rank 1") || msg.contains("rank 2"), "{msg}");
}
