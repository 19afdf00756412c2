//! Connection handshake (protocol version 3): both ends prove they hold the job token without
//! sending it, the accepting side first challenges, and nobody says anything about itself before
//! the other has proved the token.
//!
//! 1. The acceptor sends a random nonce `nonce_a` (32 bytes, nothing else: no magic, no version,
//!    no length).
//! 2. The connector answers its own nonce `nonce_c` and `HMAC-SHA256(token, "connector" | nonce_a
//!    | nonce_c)`. The acceptor checks it; a wrong proof closes the socket without a byte more.
//! 3. The acceptor proves itself: `HMAC-SHA256(token, "acceptor" | nonce_a | nonce_c)`. The
//!    connector checks it; a wrong proof closes the socket before it says who it is.
//! 4. Only then the connector sends its `Hello` (protocol version, world size, both ranks, what
//!    the connection is for, a fingerprint of its job-wide settings) with
//!    `HMAC-SHA256(token, "hello" | nonce_a | nonce_c | hello)`, and the acceptor checks the
//!    hello's fields and answers acceptance or a refusal with its reason.
//!
//! A stranger who connects learns 32 random bytes, not even how the protocol is framed; a
//! connector that reached a stranger's listener reveals a nonce and a proof bound to the
//! stranger's nonce, never its rank, job or settings. Fresh nonces on both sides make a recorded
//! exchange useless for a replay. Version 2 (before this one), where the connector spoke first, is
//! recognised by its hello's magic and refused with a message that says so; a version-3 connector
//! facing a version-2 acceptor hears no challenge and says that it may be an older ringdet.
//!
//! Every length read here is bounded before anything is allocated: every message but a refusal
//! has a fixed length, and a refusal's reason is at most [`MAX_REASON`] bytes whatever its
//! length field says.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::{Read, Write};

const HELLO_MAGIC: u32 = 0x5244_4831;
/// Bytes of a hello message.
pub const HELLO_LEN: usize = 60;
const NONCE_LEN: usize = 32;
const MAC_LEN: usize = 32;
/// Bytes the acceptor sends first: its nonce.
pub const CHALLENGE_LEN: usize = NONCE_LEN;
/// Bytes of the connector's answer: its nonce and its proof.
pub const PROOF_LEN: usize = NONCE_LEN + MAC_LEN;
/// Bytes of the acceptor's proof.
pub const ACCEPTOR_PROOF_LEN: usize = MAC_LEN;
/// Bytes of the connector's hello with its MAC.
pub const SEALED_HELLO_LEN: usize = HELLO_LEN + MAC_LEN;
/// Most bytes of a refusal's reason that are read (and allocated), whatever its length field says.
pub const MAX_REASON: usize = 512;

/// What a connection will be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// A ring link from a rank to its right neighbour.
    Ring = 1,
    /// A rank asking the master for the endpoint table.
    Rendezvous = 2,
    /// A rank talking to its host leader in hierarchical mode.
    Local = 3,
    /// A ring link between host leaders in hierarchical mode.
    Leaders = 4,
    /// A link to a recursive halving-doubling partner (stream = bit index).
    Pair = 5,
}

/// First message of the connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version of the connector.
    pub version: u16,
    /// What the connection is for.
    pub purpose: Purpose,
    /// Stream index for links with several streams.
    pub stream: u8,
    /// World size the connector believes in.
    pub world_size: u32,
    /// Connector's rank.
    pub from_rank: u32,
    /// Rank the connector wants to reach.
    pub to_rank: u32,
    /// Connector's random nonce (carried for the layout; the handshake's nonces are exchanged
    /// before the hello).
    pub nonce: [u8; NONCE_LEN],
    /// Fingerprint of the connector's job-wide settings
    /// ([`Config::fingerprint`](crate::Config::fingerprint)).
    pub settings: u64,
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The other side refused us and said why.
    #[error("refused: {0}")]
    Refused(String),
    /// The other side sent something that is not a valid handshake (or the wrong token proof).
    #[error("{0}")]
    Invalid(String),
    /// Reading or writing failed (closed, timed out).
    #[error("{0}")]
    Io(String),
}

fn io_text(what: &str, e: std::io::Error) -> String {
    let kind = match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => "timed out".to_string(),
        std::io::ErrorKind::UnexpectedEof => "connection closed".to_string(),
        _ => e.to_string(),
    };
    format!("{what}: {kind}")
}

fn io_err(what: &str, e: std::io::Error) -> HandshakeError {
    HandshakeError::Io(io_text(what, e))
}

/// Fresh random nonce from the operating system.
pub fn nonce() -> Result<[u8; NONCE_LEN], HandshakeError> {
    let mut n = [0u8; NONCE_LEN];
    getrandom::fill(&mut n).map_err(|e| HandshakeError::Io(format!("OS random source: {e}")))?;
    Ok(n)
}

impl Hello {
    /// Encodes into [`HELLO_LEN`] bytes.
    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        b[0..4].copy_from_slice(&HELLO_MAGIC.to_le_bytes());
        b[4..6].copy_from_slice(&self.version.to_le_bytes());
        b[6] = self.purpose as u8;
        b[7] = self.stream;
        b[8..12].copy_from_slice(&self.world_size.to_le_bytes());
        b[12..16].copy_from_slice(&self.from_rank.to_le_bytes());
        b[16..20].copy_from_slice(&self.to_rank.to_le_bytes());
        b[20..52].copy_from_slice(&self.nonce);
        b[52..60].copy_from_slice(&self.settings.to_le_bytes());
        b
    }

    /// Decodes, refusing anything that is not a hello.
    pub fn decode(b: &[u8; HELLO_LEN]) -> Result<Hello, HandshakeError> {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        if u32_at(0) != HELLO_MAGIC {
            return Err(HandshakeError::Invalid(
                "not a ringdet hello (bad magic)".into(),
            ));
        }
        let purpose = match b[6] {
            1 => Purpose::Ring,
            2 => Purpose::Rendezvous,
            3 => Purpose::Local,
            4 => Purpose::Leaders,
            5 => Purpose::Pair,
            p => return Err(HandshakeError::Invalid(format!("unknown purpose {p}"))),
        };
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&b[20..52]);
        let mut settings = [0u8; 8];
        settings.copy_from_slice(&b[52..60]);
        Ok(Hello {
            version: u16::from_le_bytes([b[4], b[5]]),
            purpose,
            stream: b[7],
            world_size: u32_at(8),
            from_rank: u32_at(12),
            to_rank: u32_at(16),
            nonce,
            settings: u64::from_le_bytes(settings),
        })
    }
}

fn mac(token: &[u8], label: &[u8], parts: &[&[u8]]) -> Result<Hmac<Sha256>, HandshakeError> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(token)
        .map_err(|e| HandshakeError::Invalid(format!("job token: {e}")))?;
    m.update(b"ringdet handshake v3 ");
    m.update(label);
    for part in parts {
        m.update(&(part.len() as u64).to_le_bytes());
        m.update(part);
    }
    Ok(m)
}

fn send_refusal<S: Write>(s: &mut S, reason: &str) {
    let r = &reason.as_bytes()[..reason.len().min(MAX_REASON)];
    let mut b = vec![1u8];
    b.extend_from_slice(&(r.len() as u16).to_le_bytes());
    b.extend_from_slice(r);
    // Best effort: the peer may already be gone.
    let _ = s.write_all(&b);
}

fn read_status<S: Read>(s: &mut S) -> Result<(), HandshakeError> {
    let mut st = [0u8; 1];
    s.read_exact(&mut st)
        .map_err(|e| io_err("reading answer", e))?;
    match st[0] {
        0 => Ok(()),
        1 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l)
                .map_err(|e| io_err("reading refusal", e))?;
            let len = (u16::from_le_bytes(l) as usize).min(MAX_REASON);
            let mut r = vec![0u8; len];
            s.read_exact(&mut r)
                .map_err(|e| io_err("reading refusal", e))?;
            Err(HandshakeError::Refused(
                String::from_utf8_lossy(&r).into_owned(),
            ))
        }
        x => Err(HandshakeError::Invalid(format!(
            "unknown answer status {x}"
        ))),
    }
}

/// The protocol version of a hello sent by a connector of version 2 or older (which spoke
/// first), recognised by its magic at the start of what should be a nonce and a proof.
fn old_connector_version(answer: &[u8; PROOF_LEN]) -> Option<u16> {
    let magic = u32::from_le_bytes([answer[0], answer[1], answer[2], answer[3]]);
    let version = u16::from_le_bytes([answer[4], answer[5]]);
    (magic == HELLO_MAGIC && version < super::frame::VERSION as u16).then_some(version)
}

/// Connector side: answers the acceptor's challenge with our proof of the token, checks the
/// acceptor's proof, and only then sends `hello` (sealed with the token) and reads the answer.
/// Nothing about this rank is sent to an acceptor that has not proved the token.
pub fn connect<S: Read + Write>(
    s: &mut S,
    token: &[u8],
    hello: &Hello,
) -> Result<(), HandshakeError> {
    let mut nonce_a = [0u8; NONCE_LEN];
    s.read_exact(&mut nonce_a).map_err(|e| {
        HandshakeError::Io(format!(
            "{} (an older ringdet, whose handshake waits for the connecting rank to speak \
             first, or not a ringdet rank?)",
            io_text("waiting for the challenge", e)
        ))
    })?;
    let nonce_c = nonce()?;
    let proof_c = mac(token, b"connector", &[&nonce_a, &nonce_c])?
        .finalize()
        .into_bytes();
    let mut answer = [0u8; PROOF_LEN];
    answer[..NONCE_LEN].copy_from_slice(&nonce_c);
    answer[NONCE_LEN..].copy_from_slice(&proof_c);
    s.write_all(&answer)
        .map_err(|e| io_err("sending proof", e))?;
    let mut proof_a = [0u8; MAC_LEN];
    if let Err(e) = s.read_exact(&mut proof_a) {
        return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
            HandshakeError::Invalid(
                "the peer closed the connection after our proof of the job token: it holds \
                 another job token (another job on that port?)"
                    .into(),
            )
        } else {
            io_err("reading the peer's proof", e)
        });
    }
    if mac(token, b"acceptor", &[&nonce_a, &nonce_c])?
        .verify_slice(&proof_a)
        .is_err()
    {
        return Err(HandshakeError::Invalid(
            "peer does not hold our job token (closed before saying who we are)".into(),
        ));
    }
    let hb = hello.encode();
    let seal = mac(token, b"hello", &[&nonce_a, &nonce_c, &hb])?
        .finalize()
        .into_bytes();
    let mut sealed = [0u8; SEALED_HELLO_LEN];
    sealed[..HELLO_LEN].copy_from_slice(&hb);
    sealed[HELLO_LEN..].copy_from_slice(&seal);
    s.write_all(&sealed)
        .map_err(|e| io_err("sending hello", e))?;
    read_status(s)
}

/// Acceptor side: challenges, verifies the proof of the token, proves ours, and only then reads
/// the hello and lets `check` vet its fields (the protocol version is checked here). Returns the
/// accepted hello; on refusal the reason was already sent to the peer. A peer that has not proved
/// the token hears the challenge (32 random bytes) and nothing else.
pub fn accept<S: Read + Write>(
    s: &mut S,
    token: &[u8],
    check: impl FnOnce(&Hello) -> Result<(), String>,
) -> Result<Hello, HandshakeError> {
    let nonce_a = nonce()?;
    s.write_all(&nonce_a)
        .map_err(|e| io_err("sending challenge", e))?;
    let mut answer = [0u8; PROOF_LEN];
    s.read_exact(&mut answer)
        .map_err(|e| io_err("reading proof", e))?;
    if let Some(version) = old_connector_version(&answer) {
        return Err(HandshakeError::Invalid(format!(
            "a rank speaking protocol version {version} (an older ringdet, whose connecting rank \
             speaks first); this rank speaks {}: run the same ringdet on every host",
            super::frame::VERSION
        )));
    }
    let (nonce_c, proof_c) = answer.split_at(NONCE_LEN);
    if mac(token, b"connector", &[&nonce_a, nonce_c])?
        .verify_slice(proof_c)
        .is_err()
    {
        // Not a word: a stranger learns nothing, not even how a refusal looks.
        return Err(HandshakeError::Invalid(
            "no proof of the job token (a stranger, or a rank of another job)".into(),
        ));
    }
    let proof_a = mac(token, b"acceptor", &[&nonce_a, nonce_c])?
        .finalize()
        .into_bytes();
    s.write_all(&proof_a)
        .map_err(|e| io_err("sending our proof", e))?;
    let mut sealed = [0u8; SEALED_HELLO_LEN];
    s.read_exact(&mut sealed)
        .map_err(|e| io_err("reading hello", e))?;
    let (hb, seal) = sealed.split_at(HELLO_LEN);
    if mac(token, b"hello", &[&nonce_a, nonce_c, hb])?
        .verify_slice(seal)
        .is_err()
    {
        return Err(HandshakeError::Invalid(
            "the hello does not carry the job token's seal (altered on the way?)".into(),
        ));
    }
    let mut hello_bytes = [0u8; HELLO_LEN];
    hello_bytes.copy_from_slice(hb);
    // The peer holds the token: it may now hear what is wrong with its hello.
    let vetted = match Hello::decode(&hello_bytes) {
        Err(e) => Err(e.to_string()),
        Ok(hello) if hello.version != super::frame::VERSION as u16 => Err(format!(
            "protocol version {} (this rank speaks {})",
            hello.version,
            super::frame::VERSION
        )),
        Ok(hello) => check(&hello).map(|()| hello),
    };
    match vetted {
        Ok(hello) => {
            s.write_all(&[0u8])
                .map_err(|e| io_err("sending acceptance", e))?;
            Ok(hello)
        }
        Err(reason) => {
            send_refusal(s, &reason);
            Err(HandshakeError::Refused(reason))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that sends `input` (then end of stream) and keeps what it is sent.
    struct Peer {
        input: std::io::Cursor<Vec<u8>>,
        sent: Vec<u8>,
    }

    impl Read for Peer {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for Peer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.sent.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn hello(version: u16) -> Hello {
        Hello {
            version,
            purpose: Purpose::Ring,
            stream: 0,
            world_size: 2,
            from_rank: 1,
            to_rank: 0,
            nonce: [3; NONCE_LEN],
            settings: 9,
        }
    }

    #[test]
    fn a_version_2_connector_is_refused_naming_the_versions() {
        // Version 2: the connector's hello came first, then status 0 and its proof.
        let mut input = hello(2).encode().to_vec();
        input.extend_from_slice(&[0u8; 33]);
        let mut peer = Peer {
            input: std::io::Cursor::new(input),
            sent: Vec::new(),
        };
        let err = accept(&mut peer, b"token", |_| Ok(())).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("protocol version 2") && text.contains("older ringdet"),
            "{text}"
        );
        assert_eq!(
            peer.sent.len(),
            CHALLENGE_LEN,
            "only the challenge was sent"
        );
    }

    #[test]
    fn a_connector_facing_a_silent_listener_says_nothing_and_suspects_an_older_ringdet() {
        // A version-2 acceptor waits for the connector to speak first: here, it closes.
        let mut peer = Peer {
            input: std::io::Cursor::new(Vec::new()),
            sent: Vec::new(),
        };
        let err = connect(&mut peer, b"token", &hello(VERSION_U16)).unwrap_err();
        assert!(err.to_string().contains("older ringdet"), "{err}");
        assert!(peer.sent.is_empty(), "sent {:?}", peer.sent);
    }

    const VERSION_U16: u16 = super::super::frame::VERSION as u16;
}
