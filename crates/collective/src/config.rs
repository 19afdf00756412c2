//! Tunables of a communicator. Every rank of a job must use the same values (they decide how
//! buffers are cut into frames); `from_env` reads them from the same variables on every rank.

use std::time::Duration;

/// Settings of a [`Communicator`](crate::Communicator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Deadline for the whole rendezvous and every handshake.
    pub handshake_timeout: Duration,
    /// Longest time a collective may go without any byte moving before it fails.
    pub data_timeout: Duration,
    /// Largest frame payload: the pipelining granularity of the ring.
    pub segment_bytes: usize,
    /// Ring steps overlap by segment: a received segment is forwarded this many frames later
    /// (at least 1). Small values keep the forwarded data in cache; `usize::MAX` runs the steps
    /// one after another.
    pub ring_lag: usize,
    /// TCP connections per neighbour; frames are spread round-robin over them.
    pub streams: usize,
    /// All-reduces up to this many bytes take the latency path (all-gather the whole buffers in
    /// `n - 1` steps, then reduce locally in rank order) instead of the `2(n - 1)`-step ring.
    pub small_bytes: usize,
    /// How long to keep polling sockets without blocking after the last progress.
    pub spin: Duration,
    /// Collectives that send at least this many bytes use a sender thread beside the receiving
    /// thread (`usize::MAX` turns it off).
    pub sender_thread_bytes: usize,
    /// For a power-of-two world of at least 4 ranks, large all-reduces use recursive halving
    /// (reduce-scatter) and doubling (all-gather) between partner pairs instead of the ring:
    /// `2 log2(n)` pairwise steps instead of `2(n - 1)` chained ones.
    pub halving_doubling: bool,
    /// All-reduces of at least this many bytes use the ring even where halving-doubling is on:
    /// with its steps overlapped by segment the ring measured as fast or faster from 1 MiB, on
    /// shaped links between hosts (4 and 8 hosts at 1 Gbit/s: 16 MiB 0.116 against 0.096 and
    /// 0.080 GB/s) and on loopback (4 ranks, 1-4 MiB); below it the two are level.
    pub halving_doubling_max_bytes: usize,
    /// Ranks with the same IP form a host: large all-reduces are reduced inside the host by
    /// reading the other ranks' buffers directly (one slice per rank), and one leader per host
    /// runs the TCP ring between hosts. Only takes effect when some IP has two or more ranks.
    pub hierarchical: bool,
    /// In hierarchical mode, all-reduces of at least this many bytes take the direct path
    /// inside a host; smaller ones go through shared-memory slots of this size (one host; at
    /// most 1 MiB, larger ones take the TCP ring) or through the host leader and `/dev/shm`
    /// (several hosts).
    pub hier_direct_bytes: usize,
    /// Upper bound on the total bytes an `all_gather` may receive (guards against corrupt lengths).
    pub max_gather_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            handshake_timeout: Duration::from_secs(60),
            data_timeout: Duration::from_secs(120),
            segment_bytes: 256 << 10,
            ring_lag: 8,
            streams: 1,
            small_bytes: 64 << 10,
            spin: Duration::ZERO,
            sender_thread_bytes: 4 << 20,
            halving_doubling: true,
            halving_doubling_max_bytes: 1 << 20,
            hierarchical: true,
            hier_direct_bytes: 128 << 10,
            max_gather_bytes: 8 << 30,
        }
    }
}

impl Config {
    /// A fingerprint of the settings every rank of a job must share (they decide how buffers are
    /// cut into frames and which path a collective takes): exchanged in the handshake, so a rank
    /// started with other tunables is refused by name instead of failing mid-collective.
    /// Timeouts, spinning and the sender-thread threshold may differ between ranks.
    pub fn fingerprint(&self) -> u64 {
        use sha2::{Digest, Sha256};
        let shared = format!(
            "segment={} lag={} streams={} small={} hd={} hd_max={} hier={} hier_direct={}",
            self.segment_bytes,
            self.ring_lag,
            self.streams,
            self.small_bytes,
            self.halving_doubling,
            self.halving_doubling_max_bytes,
            self.hierarchical,
            self.hier_direct_bytes
        );
        let digest = Sha256::digest(shared.as_bytes());
        u64::from_le_bytes(digest[..8].try_into().unwrap_or([0; 8]))
    }
}
