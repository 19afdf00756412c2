//! Fuzzing the wire parsers with streams, not single buffers: random bytes and mutated valid
//! messages go into the handshake (both sides) and into the frame reader of a link. Whatever
//! arrives, a parser never panics, never allocates more than a stated bound however large a
//! length field says the next part is, and ends in an error or in a valid message; a stranger
//! without the token hears 32 random bytes (the challenge) and nothing else; a connector facing
//! a listener without the token never sends its hello; a genuine handshake corrupted by one byte
//! is never accepted with other fields than the ones sent.
//!
//! Case counts are fixed and small so this runs in a few seconds; every stream is finite and
//! every read of a socket has a timeout.

use proptest::prelude::*;
use ringdet_collective::CommError;
use ringdet_collective::control::check_header;
use ringdet_collective::engine::OpCtx;
use ringdet_collective::transport::{Link, poll};
use ringdet_collective::wire::frame::{HEADER_LEN, Header, Kind, MAX_ABORT_PAYLOAD, VERSION};
use ringdet_collective::wire::handshake::{
    self, ACCEPTOR_PROOF_LEN, CHALLENGE_LEN, HandshakeError, Hello, MAX_REASON, PROOF_LEN, Purpose,
    SEALED_HELLO_LEN,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

const TOKEN: &[u8] = b"fuzz-job-token";

/// Largest single allocation a handshake may make, whatever it reads: a refusal's reason is cut
/// to [`MAX_REASON`] bytes (its length field can say 65535) and may triple when invalid UTF-8 is
/// replaced; 1 KiB covers the error texts.
const HANDSHAKE_ALLOC_BOUND: usize = 3 * MAX_REASON + 1024;

/// Largest single allocation of the frame reader: data payloads go into the caller's buffers
/// (`max_frame` bounds their length field), an abort report's payload is at most
/// [`MAX_ABORT_PAYLOAD`] bytes and may triple as text.
const FRAME_ALLOC_BOUND: usize = 3 * MAX_ABORT_PAYLOAD as usize + 1024;

/// The global allocator, noting the largest allocation the current thread makes while watched.
struct Watched;

thread_local! {
    /// `Some(largest so far)` while the current thread is watched.
    static LARGEST: Cell<Option<usize>> = const { Cell::new(None) };
}

fn note(size: usize) {
    // `try_with`: never fail inside the allocator, even while the thread is being torn down.
    let _ = LARGEST.try_with(|l| {
        if let Some(m) = l.get() {
            l.set(Some(m.max(size)));
        }
    });
}

// SAFETY: every call is passed on unchanged to the system allocator; `note` only reads and
// writes a thread-local `Cell` without a destructor and never allocates.
unsafe impl GlobalAlloc for Watched {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Watched = Watched;

/// Runs `f` and returns its result with the largest allocation it made on this thread.
fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|l| l.set(Some(0)));
    let r = f();
    let largest = LARGEST.with(|l| l.take()).unwrap_or(0);
    (r, largest)
}

/// A peer that sends `input` in pieces of at most `piece` bytes, then closes, and keeps what it
/// is sent (up to 4 KiB; a parser that wants to send more gets an error).
struct Script {
    input: Vec<u8>,
    at: usize,
    piece: usize,
    sent_to_it: Vec<u8>,
}

impl Script {
    fn new(input: Vec<u8>, piece: usize) -> Script {
        Script {
            input,
            at: 0,
            piece: piece.max(1),
            sent_to_it: Vec::with_capacity(4096),
        }
    }
}

impl Read for Script {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.piece).min(self.input.len() - self.at);
        buf[..n].copy_from_slice(&self.input[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Write for Script {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.sent_to_it.len() + buf.len() > 4096 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        self.sent_to_it.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn purpose() -> impl Strategy<Value = Purpose> {
    prop_oneof![
        Just(Purpose::Ring),
        Just(Purpose::Rendezvous),
        Just(Purpose::Local),
        Just(Purpose::Leaders),
        Just(Purpose::Pair),
    ]
}

prop_compose! {
    fn hello()(
        version in prop_oneof![Just(VERSION as u16), Just(2u16), any::<u16>()],
        purpose in purpose(),
        stream in any::<u8>(),
        world_size in any::<u32>(),
        from_rank in any::<u32>(),
        to_rank in any::<u32>(),
        nonce in proptest::array::uniform32(any::<u8>()),
        settings in any::<u64>(),
    ) -> Hello {
        Hello { version, purpose, stream, world_size, from_rank, to_rank, nonce, settings }
    }
}

/// Flips the byte at each `(index, mask)` whose index falls inside `bytes`.
fn mutate(mut bytes: Vec<u8>, flips: &[(usize, u8)]) -> Vec<u8> {
    for &(i, mask) in flips {
        if let Some(b) = bytes.get_mut(i) {
            *b ^= mask;
        }
    }
    bytes
}

/// Runs the acceptor on `input` and checks what a peer without the token may hear: the
/// challenge (32 bytes) and nothing else, not even a refusal.
fn accept_stranger(input: Vec<u8>, piece: usize) -> Result<(), TestCaseError> {
    let mut peer = Script::new(input, piece);
    let (result, largest) = largest_allocation(|| handshake::accept(&mut peer, TOKEN, |_| Ok(())));
    prop_assert!(result.is_err(), "a stranger was accepted: {result:?}");
    prop_assert!(
        largest <= HANDSHAKE_ALLOC_BOUND,
        "allocated {largest} bytes"
    );
    prop_assert_eq!(
        peer.sent_to_it.len(),
        CHALLENGE_LEN,
        "{:?}",
        peer.sent_to_it
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn acceptor_survives_random_streams(input in proptest::collection::vec(any::<u8>(), 0..400), piece in 1usize..80) {
        accept_stranger(input, piece)?;
    }

    #[test]
    fn acceptor_survives_made_up_proofs_and_hellos_and_tells_a_stranger_nothing(
        h in hello(),
        old_style in any::<bool>(),
        proof in proptest::collection::vec(any::<u8>(), PROOF_LEN..=PROOF_LEN),
        answer in proptest::collection::vec(any::<u8>(), 0..80),
        flips in proptest::collection::vec((0usize..PROOF_LEN + SEALED_HELLO_LEN + 40, 1u8..=255), 0..4),
        piece in 1usize..80,
    ) {
        // A version-2 connector's hello first, or a made-up proof and then a hello.
        let mut input = if old_style { Vec::new() } else { proof };
        input.extend_from_slice(&h.encode());
        input.extend_from_slice(&answer);
        accept_stranger(mutate(input, &flips), piece)?;
    }

    #[test]
    fn connector_survives_random_and_mutated_answers(
        h in hello(),
        answer in prop_oneof![
            // Anything at all.
            proptest::collection::vec(any::<u8>(), 0..300),
            // A refusal whose length field says anything, with a body of any length.
            (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..700)).prop_map(|(len, body)| {
                let mut b = vec![1u8];
                b.extend_from_slice(&len.to_le_bytes());
                b.extend_from_slice(&body);
                b
            }),
            // A challenge and a made-up proof, then a refusal-looking status and anything.
            (proptest::collection::vec(any::<u8>(), CHALLENGE_LEN + ACCEPTOR_PROOF_LEN..=CHALLENGE_LEN + ACCEPTOR_PROOF_LEN),
             proptest::collection::vec(any::<u8>(), 0..200)).prop_map(|(mut b, rest)| {
                b.push(1);
                b.extend_from_slice(&rest);
                b
            }),
        ],
        piece in 1usize..80,
    ) {
        let mut peer = Script::new(answer, piece);
        let (result, largest) = largest_allocation(|| handshake::connect(&mut peer, TOKEN, &h));
        prop_assert!(largest <= HANDSHAKE_ALLOC_BOUND, "allocated {largest} bytes");
        match result {
            Ok(()) => prop_assert!(false, "accepted an acceptor without the token"),
            Err(HandshakeError::Refused(reason)) => {
                prop_assert!(reason.chars().count() <= MAX_REASON, "{} chars", reason.len());
            }
            Err(_) => {}
        }
        // It answered a challenge with its nonce and proof, and never said who it is.
        let sent = &peer.sent_to_it;
        prop_assert!(sent.is_empty() || sent.len() == PROOF_LEN, "sent {} bytes", sent.len());
        prop_assert!(!sent.windows(4).any(|w| w == &h.encode()[..4]), "the hello's magic was sent");
    }
}

/// Bytes of a genuine exchange: connector to acceptor (nonce and proof, then the sealed hello),
/// acceptor to connector (the challenge, its proof, then the acceptance).
const CONNECTOR_BYTES: usize = PROOF_LEN + SEALED_HELLO_LEN;
const ACCEPTOR_BYTES: usize = CHALLENGE_LEN + ACCEPTOR_PROOF_LEN + 1;

/// Copies `from` to `to`, flipping the byte at `flip` (counted over this direction), until
/// `from` closes or fails; then closes the writing side of `to`.
fn relay(mut from: UnixStream, mut to: UnixStream, flip: Option<(usize, u8)>) {
    let mut buf = [0u8; 256];
    let mut at = 0usize;
    // Bounded: a genuine exchange is under 100 bytes each way.
    while at < 4096 {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((i, mask)) = flip
            && (at..at + n).contains(&i)
        {
            buf[i - at] ^= mask;
        }
        at += n;
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Runs a genuine handshake through a relay that flips one byte (`to_acceptor` says in which
/// direction); returns what the acceptor and the connector ended with.
fn handshake_through_relay(
    h: Hello,
    to_acceptor: bool,
    flip: Option<(usize, u8)>,
) -> (Result<Hello, HandshakeError>, Result<(), HandshakeError>) {
    let (mut connector, connector_far) = UnixStream::pair().expect("socket pair");
    let (mut acceptor, acceptor_far) = UnixStream::pair().expect("socket pair");
    // A corrupted length can leave both sides waiting for bytes that never come.
    for s in [&connector, &acceptor, &connector_far, &acceptor_far] {
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
    }
    let (c_in, a_out) = (
        connector_far.try_clone().expect("clone"),
        acceptor_far.try_clone().expect("clone"),
    );
    std::thread::scope(|s| {
        s.spawn(move || relay(c_in, acceptor_far, flip.filter(|_| to_acceptor)));
        s.spawn(move || relay(a_out, connector_far, flip.filter(|_| !to_acceptor)));
        let accepted = s.spawn(move || {
            let r = handshake::accept(&mut acceptor, TOKEN, |_| Ok(()));
            drop(acceptor);
            r
        });
        let connected = handshake::connect(&mut connector, TOKEN, &h);
        drop(connector);
        (accepted.join().expect("acceptor"), connected)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_corrupted_genuine_handshake_is_never_accepted_with_other_fields(
        mut h in hello(),
        to_acceptor in any::<bool>(),
        at in 0usize..CONNECTOR_BYTES + 8,
        mask in 1u8..=255,
    ) {
        h.version = VERSION as u16;
        let (accepted, connected) = handshake_through_relay(h, to_acceptor, Some((at, mask)));
        let flipped = at < if to_acceptor { CONNECTOR_BYTES } else { ACCEPTOR_BYTES };
        if let Ok(got) = &accepted {
            prop_assert_eq!(got, &h);
        }
        if connected.is_ok() {
            prop_assert!(accepted.is_ok(), "the connector finished, the acceptor did not");
        }
        if !flipped {
            prop_assert!(accepted.is_ok() && connected.is_ok(), "{accepted:?} {connected:?}");
        } else {
            // Only the last byte (the acceptance) can be lost after the acceptor is done.
            let acceptance_only = !to_acceptor && at == ACCEPTOR_BYTES - 1;
            if acceptance_only {
                prop_assert!(accepted.is_ok() && connected.is_err(), "{accepted:?} {connected:?}");
            } else {
                prop_assert!(accepted.is_err() && connected.is_err(), "{accepted:?} {connected:?}");
            }
        }
    }
}

/// Frames of a valid all-reduce (op 7): `count` frames of `len` bytes.
fn valid_frames(count: usize, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for seq in 0..count {
        let h = Header {
            kind: Kind::AllReduce,
            op_id: 7,
            seq: seq as u32,
            len: len as u32,
        };
        out.extend_from_slice(&h.encode());
        out.extend((0..len).map(|i| (i * 31 + seq) as u8));
    }
    out
}

/// Reads up to `count` frames of `len` bytes from `input` the way a rank receives them (header
/// check against the plan, then the payload into a buffer sized by the plan).
fn read_frames(input: &[u8], count: usize, len: usize) -> (Result<usize, CommError>, usize) {
    let (mut writer, mut reader) = Link::pair(1, 0).expect("socket pair");
    // Under the socket buffer: written at once, then closed so the reader meets the end.
    poll::write_all(&mut writer, input, Instant::now() + Duration::from_secs(5))
        .expect("write the stream");
    drop(writer);
    let aborted = AtomicBool::new(false);
    let ctx = OpCtx {
        kind: Kind::AllReduce,
        op_id: 7,
        name: "all_reduce #7".into(),
        timeout: Duration::from_secs(5),
        spin: Duration::ZERO,
        max_frame: len as u32,
        aborted: &aborted,
    };
    let mut payload = vec![0u8; len];
    let deadline = Instant::now() + Duration::from_secs(5);
    largest_allocation(|| {
        for seq in 0..count {
            let mut hb = [0u8; HEADER_LEN];
            poll::read_exact(&mut reader, &mut hb, deadline)
                .map_err(|e| ringdet_collective::control::link_error(&ctx.name, &reader, &e))?;
            check_header(&ctx, &mut reader, &hb, seq, len)?;
            poll::read_exact(&mut reader, &mut payload, deadline)
                .map_err(|e| ringdet_collective::control::link_error(&ctx.name, &reader, &e))?;
        }
        Ok(count)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn frame_reader_survives_random_streams(input in proptest::collection::vec(any::<u8>(), 0..2000), len in 0usize..600) {
        let (result, largest) = read_frames(&input, 3, len);
        prop_assert!(largest <= FRAME_ALLOC_BOUND, "allocated {largest} bytes");
        prop_assert!(result.is_err(), "random bytes read as frames");
    }

    #[test]
    fn frame_reader_refuses_every_changed_header_and_only_those(
        count in 1usize..5,
        len in 0usize..300,
        flips in proptest::collection::vec((0usize..1600, 1u8..=255), 0..4),
        cut in proptest::option::of(0usize..1600),
    ) {
        let valid = valid_frames(count, len);
        let mut input = mutate(valid.clone(), &flips);
        if let Some(c) = cut {
            input.truncate(c);
        }
        let frame = HEADER_LEN + len;
        let header_changed = flips
            .iter()
            .any(|&(i, _)| i < valid.len() && i % frame < HEADER_LEN);
        let cut_short = input.len() < valid.len();
        let (result, largest) = read_frames(&input, count, len);
        prop_assert!(largest <= FRAME_ALLOC_BOUND, "allocated {largest} bytes");
        if header_changed || cut_short {
            prop_assert!(result.is_err(), "a changed or cut stream was read whole");
        } else {
            prop_assert_eq!(result, Ok(count));
        }
    }

    #[test]
    fn abort_reports_of_any_length_field_stay_bounded(len_field in any::<u32>(), body in proptest::collection::vec(any::<u8>(), 0..5000)) {
        let h = Header { kind: Kind::Abort, op_id: 7, seq: 0, len: 0 };
        let mut input = h.encode().to_vec();
        input[20..24].copy_from_slice(&len_field.to_le_bytes());
        input.extend_from_slice(&body);
        let (result, largest) = read_frames(&input, 1, 64);
        prop_assert!(largest <= FRAME_ALLOC_BOUND, "allocated {largest} bytes");
        let refused = matches!(
            result,
            Err(CommError::Remote { .. } | CommError::Protocol { .. } | CommError::Peer { .. })
        );
        prop_assert!(refused, "{result:?}");
    }
}
