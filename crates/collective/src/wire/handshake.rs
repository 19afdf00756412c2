//! Connection handshake: both ends prove they hold the job token without sending it.
//!
//! The connector sends a `Hello` (protocol version, world size, both ranks, what the connection is
//! for, a random nonce, a fingerprint of its job-wide settings). The acceptor answers with its own
//! nonce and `HMAC-SHA256(token, "acceptor" | hello | nonce_a)`; the connector checks that proof
//! and answers `HMAC-SHA256(token, "connector" | hello | nonce_a)`; the acceptor checks it, and
//! only then the hello's fields, and accepts. Fresh nonces on both sides make a recorded exchange
//! useless for a replay. A refusal carries its reason so the refused peer can report it, but the
//! acceptor says nothing about the job (version, ranks, world size, settings) to a peer that has
//! not proved the token: a stranger hears at most a challenge and "wrong job token".
//!
//! Every length read here is bounded before anything is allocated: a hello is [`HELLO_LEN`]
//! bytes, a refusal's reason at most [`MAX_REASON`] bytes whatever its length field says.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::{Read, Write};

const HELLO_MAGIC: u32 = 0x5244_4831;
/// Bytes of a hello message.
pub const HELLO_LEN: usize = 60;
const NONCE_LEN: usize = 32;
const MAC_LEN: usize = 32;
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
    /// Connector's random nonce.
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

fn io_err(what: &str, e: std::io::Error) -> HandshakeError {
    let kind = match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => "timed out".to_string(),
        std::io::ErrorKind::UnexpectedEof => "connection closed".to_string(),
        _ => e.to_string(),
    };
    HandshakeError::Io(format!("{what}: {kind}"))
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

fn mac(
    token: &[u8],
    label: &[u8],
    hello: &[u8],
    nonce: &[u8],
) -> Result<Hmac<Sha256>, HandshakeError> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(token)
        .map_err(|e| HandshakeError::Invalid(format!("job token: {e}")))?;
    m.update(label);
    m.update(hello);
    m.update(nonce);
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

/// Connector side: sends `hello`, checks the acceptor's proof, proves our token.
pub fn connect<S: Read + Write>(
    s: &mut S,
    token: &[u8],
    hello: &Hello,
) -> Result<(), HandshakeError> {
    let hb = hello.encode();
    s.write_all(&hb).map_err(|e| io_err("sending hello", e))?;
    read_status(s)?;
    let mut nonce_a = [0u8; NONCE_LEN];
    let mut proof = [0u8; MAC_LEN];
    s.read_exact(&mut nonce_a)
        .map_err(|e| io_err("reading challenge", e))?;
    s.read_exact(&mut proof)
        .map_err(|e| io_err("reading challenge", e))?;
    if mac(token, b"ringdet-acceptor", &hb, &nonce_a)?
        .verify_slice(&proof)
        .is_err()
    {
        send_refusal(s, "wrong job token (the two ranks hold different tokens)");
        return Err(HandshakeError::Invalid(
            "peer does not hold our job token".into(),
        ));
    }
    let mine = mac(token, b"ringdet-connector", &hb, &nonce_a)?
        .finalize()
        .into_bytes();
    let mut b = [0u8; 1 + MAC_LEN];
    b[1..].copy_from_slice(&mine);
    s.write_all(&b).map_err(|e| io_err("sending proof", e))?;
    read_status(s)
}

/// Acceptor side: reads a hello, challenges, verifies the proof of the token, and only then lets
/// `check` vet the hello's fields (the protocol version is checked here). Returns the accepted
/// hello; on refusal the reason was already sent to the peer. Before the proof the peer is told
/// nothing but the challenge and, if its proof is wrong, "wrong job token".
pub fn accept<S: Read + Write>(
    s: &mut S,
    token: &[u8],
    check: impl FnOnce(&Hello) -> Result<(), String>,
) -> Result<Hello, HandshakeError> {
    let mut hb = [0u8; HELLO_LEN];
    s.read_exact(&mut hb)
        .map_err(|e| io_err("reading hello", e))?;
    // Garbage (bad magic, unknown purpose) is dropped without an answer.
    let hello = Hello::decode(&hb)?;
    let nonce_a = nonce()?;
    let proof = mac(token, b"ringdet-acceptor", &hb, &nonce_a)?
        .finalize()
        .into_bytes();
    let mut b = [0u8; 1 + NONCE_LEN + MAC_LEN];
    b[1..1 + NONCE_LEN].copy_from_slice(&nonce_a);
    b[1 + NONCE_LEN..].copy_from_slice(&proof);
    s.write_all(&b)
        .map_err(|e| io_err("sending challenge", e))?;
    // The connector either refuses (it found our proof wrong: a different token) or proves.
    read_status(s)?;
    let mut answer = [0u8; MAC_LEN];
    s.read_exact(&mut answer)
        .map_err(|e| io_err("reading proof", e))?;
    if mac(token, b"ringdet-connector", &hb, &nonce_a)?
        .verify_slice(&answer)
        .is_err()
    {
        let reason = "wrong job token".to_string();
        send_refusal(s, &reason);
        return Err(HandshakeError::Refused(reason));
    }
    // The peer holds the token: it may now hear what is wrong with its hello.
    let vetted = if hello.version != super::frame::VERSION as u16 {
        Err(format!(
            "protocol version {} (this rank speaks {})",
            hello.version,
            super::frame::VERSION
        ))
    } else {
        check(&hello)
    };
    if let Err(reason) = vetted {
        send_refusal(s, &reason);
        return Err(HandshakeError::Refused(reason));
    }
    s.write_all(&[0u8])
        .map_err(|e| io_err("sending acceptance", e))?;
    Ok(hello)
}
