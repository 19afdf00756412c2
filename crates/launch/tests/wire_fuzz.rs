//! Random and mutated bytes into the control channel's parser (`wire::LineSplitter` and
//! `wire::parse_line`, what `Receiver::recv` runs on every byte a peer sends): never a panic,
//! never more than the line limit held, always an error or a valid message. And random bytes
//! into both halves of the control handshake over loopback TCP: the first host never accepts a
//! stranger and tells it nothing but its 32-byte nonce; a launcher facing a listener without
//! the key never gets past its own nonce and proof (so never says hello).

use proptest::prelude::*;
use ringdet_launch::control::{prove_to_first_host, prove_to_member};
use ringdet_launch::wire::{LineSplitter, MAX_HANDSHAKE_LINE, Msg, Receiver, Sender, parse_line};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Valid messages of every kind a stranger could imitate, as lines.
fn valid_lines() -> Vec<Vec<u8>> {
    let msgs = [
        r#"{"msg":"Progress","ranks":[{"rank":1,"local_rank":0,"pid":7,"in_op":["all_reduce",4],"completed":4,"last_kind":"all_reduce","idle_ms":12,"state":"S"}]}"#,
        r#"{"msg":"Stopped"}"#,
        r#"{"msg":"Failed","failure":{"kind":{"Interrupted":{"signal":2}},"host":"127.0.0.2","node_rank":1,"time_ms":1,"log":null,"tail":[]}}"#,
        r#"{"msg":"Go","token":"0123"}"#,
        r#"{"msg":"Reject","message":"no"}"#,
        r#"{"msg":"Ping"}"#,
        r#"{"msg":"Done"}"#,
        r#"{"msg":"Final","root_cause":null}"#,
        r#"{"msg":"Hello","node_rank":1,"host":"127.0.0.2","time_ms":5,"fingerprint":{"version":"0","command":["true"],"files":[],"local_world_size":1,"ips":["127.0.0.1","127.0.0.2"],"start_port":6070,"job_id":"default","secret_proof":null},"preflight":[]}"#,
    ];
    msgs.iter().map(|m| m.as_bytes().to_vec()).collect()
}

/// Feeds `stream` in `chunks`-sized pieces through a splitter of `limit`; checks the bound and
/// that every line parses or fails cleanly. Returns how many messages were valid.
fn feed(stream: &[u8], chunks: &[usize], limit: usize) -> usize {
    let mut lines = LineSplitter::new(limit);
    let mut valid = 0;
    let mut at = 0;
    let mut sizes = chunks.iter().cycle();
    while at < stream.len() {
        let size = (*sizes.next().unwrap_or(&1))
            .max(1)
            .min(lines.room().max(1));
        let end = (at + size).min(stream.len());
        at += lines.push(&stream[at..end]);
        assert!(
            lines.held() <= limit + 1,
            "held {} > {limit} + 1",
            lines.held()
        );
        loop {
            match lines.next_line() {
                Ok(Some(line)) => {
                    assert!(line.len() <= limit);
                    if let Ok(msg) = parse_line(&line) {
                        // A valid message survives a round trip.
                        let again = serde_json::to_vec(&msg).unwrap();
                        assert!(parse_line(&again).is_ok());
                        valid += 1;
                    }
                }
                Ok(None) => break,
                Err(_) => return valid, // the receiver drops the connection here
            }
        }
        if lines.room() == 0 {
            return valid;
        }
    }
    valid
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic_and_stay_bounded(
        stream in proptest::collection::vec(any::<u8>(), 0..8192),
        chunks in proptest::collection::vec(1usize..2048, 1..8),
        limit in prop_oneof![Just(16usize), Just(MAX_HANDSHAKE_LINE), Just(4096usize)],
    ) {
        feed(&stream, &chunks, limit);
    }

    #[test]
    fn mutated_messages_are_errors_or_valid(
        which in 0usize..9,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..8),
        chunks in proptest::collection::vec(1usize..64, 1..4),
    ) {
        let mut line = valid_lines()[which].clone();
        for (at, byte, op) in edits {
            let i = at % (line.len() + 1);
            match op {
                0 if i < line.len() => line[i] = byte,
                1 => line.insert(i, byte),
                _ if i < line.len() => { line.remove(i); }
                _ => {}
            }
        }
        let mut stream = line.clone();
        stream.push(b'\n');
        feed(&stream, &chunks, MAX_HANDSHAKE_LINE);
        let _: Result<Msg, _> = parse_line(&line);
    }

    #[test]
    fn unmutated_messages_parse(which in 0usize..9) {
        let mut stream = valid_lines()[which].clone();
        stream.push(b'\n');
        prop_assert_eq!(feed(&stream, &[7], MAX_HANDSHAKE_LINE), 1);
    }
}

const KEY: &str = "fuzz-control-key";

/// Reads what `s` receives until the peer closes it (at most 4 KiB, at most 5 s).
fn read_all(mut s: TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while got.len() < 4096 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// A connected loopback pair: (the listening side's stream, the dialling side's stream).
fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let dialler = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    (accepted, dialler)
}

/// The first host's half against a peer sending `input` in `piece`-byte writes; returns the
/// outcome and what the peer heard.
fn first_host_against(input: Vec<u8>, piece: usize) -> (Result<(), String>, Vec<u8>) {
    let (accepted, mut stranger) = pair();
    let reader = stranger.try_clone().unwrap();
    let heard = std::thread::spawn(move || read_all(reader));
    for chunk in input.chunks(piece.max(1)) {
        if stranger.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = stranger.shutdown(Shutdown::Write);
    let sender = Sender::new(&accepted).unwrap();
    let mut receiver = Receiver::new(accepted.try_clone().unwrap());
    let deadline = Instant::now() + Duration::from_secs(3);
    let result = prove_to_member(&sender, &mut receiver, 1, KEY, deadline, &|| true);
    drop((sender, receiver, accepted));
    (result, heard.join().unwrap())
}

/// Another host's half against a listener sending `answer`; returns the outcome and what the
/// listener heard.
fn member_against(answer: Vec<u8>) -> (Result<(), String>, Vec<u8>) {
    let (mut listener_side, dialler) = pair();
    let reader = listener_side.try_clone().unwrap();
    let heard = std::thread::spawn(move || read_all(reader));
    let _ = listener_side.write_all(&answer);
    let _ = listener_side.shutdown(Shutdown::Write);
    let control = listener_side.local_addr().unwrap();
    let sender = Sender::new(&dialler).unwrap();
    let mut receiver = Receiver::new(dialler.try_clone().unwrap());
    let deadline = Instant::now() + Duration::from_secs(3);
    let result = prove_to_first_host(&sender, &mut receiver, 1, KEY, deadline, &|| true, control);
    drop((sender, receiver, dialler));
    (result, heard.join().unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_first_host_tells_a_stranger_nothing_but_its_nonce(
        input in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            // What a launcher of protocol 1 sent first.
            Just(br#"{"msg":"Knock","node_rank":1,"nonce":"00ff00ff00ff00ff00ff00ff00ff00ff"}"#.to_vec()),
        ],
        piece in 1usize..100,
    ) {
        let (result, heard) = first_host_against(input.clone(), piece);
        prop_assert!(result.is_err(), "a stranger passed the handshake");
        prop_assert_eq!(heard.len(), 32, "{:?}", heard);
        if input.starts_with(b"{\"msg\":\"Knock\"") && input.len() >= 64 {
            prop_assert!(result.unwrap_err().contains("older ringdet launch"));
        }
    }

    #[test]
    fn a_launcher_never_gets_past_its_proof_with_a_listener_without_the_key(
        answer in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let (result, heard) = member_against(answer.clone());
        prop_assert!(result.is_err(), "a listener without the key was believed");
        let expected = if answer.len() >= 32 { 64 } else { 0 };
        prop_assert_eq!(heard.len(), expected, "{:?}", heard);
    }
}

#[test]
fn the_two_halves_agree_only_with_the_same_key_and_node_rank() {
    let run = |member_key: &'static str, member_node: usize| {
        let (accepted, dialler) = pair();
        let control = accepted.local_addr().unwrap();
        let first = std::thread::spawn(move || {
            let sender = Sender::new(&accepted).unwrap();
            let mut receiver = Receiver::new(accepted.try_clone().unwrap());
            let deadline = Instant::now() + Duration::from_secs(5);
            prove_to_member(&sender, &mut receiver, 1, KEY, deadline, &|| true)
        });
        let sender = Sender::new(&dialler).unwrap();
        let mut receiver = Receiver::new(dialler.try_clone().unwrap());
        let deadline = Instant::now() + Duration::from_secs(5);
        let member = prove_to_first_host(
            &sender,
            &mut receiver,
            member_node,
            member_key,
            deadline,
            &|| true,
            control,
        );
        let first = first.join().unwrap();
        drop((sender, receiver, dialler));
        (first, member)
    };
    let (first, member) = run(KEY, 1);
    assert!(first.is_ok() && member.is_ok(), "{first:?} {member:?}");
    for (key, node) in [("another-key", 1), (KEY, 2)] {
        let (first, member) = run(key, node);
        assert!(
            first.is_err() && member.is_err(),
            "{key} node {node}: {first:?} {member:?}"
        );
        assert!(
            member
                .unwrap_err()
                .contains("closed the connection after our proof"),
            "the launcher learns that the first host refused its proof"
        );
    }
}
