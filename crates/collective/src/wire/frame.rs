//! Frame header: every data or control message starts with 24 bytes that say what follows.
//!
//! Layout (little-endian): magic `u32`, version `u8`, kind `u8`, reserved `u16` (zero),
//! operation id `u64`, sequence number `u32`, payload length `u32`. A receiver checks all of them
//! before it touches the payload, so a garbage or oversized frame becomes an error, never a large
//! allocation.

/// Bytes in a header.
pub const HEADER_LEN: usize = 24;
/// Identifies our frames ("RDG1").
pub const MAGIC: u32 = 0x5244_4731;
/// Protocol version carried in every frame and in the handshake.
pub const VERSION: u8 = 3;
/// Largest payload of an abort frame.
pub const MAX_ABORT_PAYLOAD: u32 = 4096;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Data of an all-reduce.
    AllReduce = 1,
    /// Data of a broadcast.
    Broadcast = 2,
    /// Data of an all-gather.
    AllGather = 3,
    /// Data of a reduce-scatter.
    ReduceScatter = 4,
    /// A barrier token.
    Barrier = 5,
    /// Per-rank lengths exchanged before a variable all-gather.
    Lengths = 6,
    /// Shared-memory hand-off notice inside a host.
    Local = 7,
    /// The sender closed its communicator after its last operation (no payload): a close that
    /// follows it is a clean leave, not a failure.
    Bye = 14,
    /// A rank failed; the payload says which and why.
    Abort = 15,
}

impl Kind {
    pub(crate) fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::AllReduce,
            2 => Kind::Broadcast,
            3 => Kind::AllGather,
            4 => Kind::ReduceScatter,
            5 => Kind::Barrier,
            6 => Kind::Lengths,
            7 => Kind::Local,
            14 => Kind::Bye,
            15 => Kind::Abort,
            _ => return None,
        })
    }

    /// Operation name used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::AllReduce => "all_reduce",
            Kind::Broadcast => "broadcast",
            Kind::AllGather => "all_gather",
            Kind::ReduceScatter => "reduce_scatter",
            Kind::Barrier => "barrier",
            Kind::Lengths => "all_gather lengths",
            Kind::Local => "local hand-off",
            Kind::Bye => "bye",
            Kind::Abort => "abort",
        }
    }
}

/// A decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the frame carries.
    pub kind: Kind,
    /// Number of the collective on this communicator (same on every rank).
    pub op_id: u64,
    /// Index of the frame within the collective.
    pub seq: u32,
    /// Payload bytes that follow.
    pub len: u32,
}

/// Why a header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// First four bytes are not [`MAGIC`].
    #[error("bad magic {0:#010x} (not a ringdet peer)")]
    Magic(u32),
    /// Another protocol version.
    #[error("protocol version {0}, expected {VERSION}")]
    Version(u8),
    /// Unknown kind byte.
    #[error("unknown frame kind {0}")]
    Kind(u8),
    /// Reserved bits set.
    #[error("reserved field is {0:#06x}, expected 0")]
    Reserved(u16),
    /// Payload longer than allowed here.
    #[error("payload of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Announced length.
        len: u32,
        /// Limit in force.
        max: u32,
    },
}

impl Header {
    /// Encodes into 24 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4] = VERSION;
        b[5] = self.kind as u8;
        b[8..16].copy_from_slice(&self.op_id.to_le_bytes());
        b[16..20].copy_from_slice(&self.seq.to_le_bytes());
        b[20..24].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    /// Decodes and validates 24 bytes; `max_len` bounds the payload (abort frames are always
    /// bounded by [`MAX_ABORT_PAYLOAD`]).
    pub fn decode(b: &[u8; HEADER_LEN], max_len: u32) -> Result<Header, FrameError> {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let magic = u32_at(0);
        if magic != MAGIC {
            return Err(FrameError::Magic(magic));
        }
        if b[4] != VERSION {
            return Err(FrameError::Version(b[4]));
        }
        let kind = Kind::from_u8(b[5]).ok_or(FrameError::Kind(b[5]))?;
        let reserved = u16::from_le_bytes([b[6], b[7]]);
        if reserved != 0 {
            return Err(FrameError::Reserved(reserved));
        }
        let mut op = [0u8; 8];
        op.copy_from_slice(&b[8..16]);
        let len = u32_at(20);
        let max = if kind == Kind::Abort {
            MAX_ABORT_PAYLOAD
        } else {
            max_len
        };
        if len > max {
            return Err(FrameError::TooLong { len, max });
        }
        Ok(Header {
            kind,
            op_id: u64::from_le_bytes(op),
            seq: u32_at(16),
            len,
        })
    }
}
