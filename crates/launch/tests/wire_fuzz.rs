//! Random and mutated bytes into the control channel's parser (`wire::LineSplitter` and
//! `wire::parse_line`, what `Receiver::recv` runs on every byte a peer sends): never a panic,
//! never more than the line limit held, always an error or a valid message.

use proptest::prelude::*;
use ringdet_launch::wire::{LineSplitter, MAX_HANDSHAKE_LINE, Msg, parse_line};

/// Valid messages of every kind a stranger could imitate, as lines.
fn valid_lines() -> Vec<Vec<u8>> {
    let msgs = [
        r#"{"msg":"Knock","node_rank":1,"nonce":"00ff"}"#,
        r#"{"msg":"Challenge","nonce":"ab","proof":"cd"}"#,
        r#"{"msg":"Proof","proof":"cd"}"#,
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
