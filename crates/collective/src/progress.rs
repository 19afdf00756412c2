//! Progress heartbeats: how a launcher tells a rank that hangs while running (an endless loop, a
//! deadlock: state `R` or `S`, not `T`) from the healthy ranks that wait for it.
//!
//! The launcher creates a small *progress board* in `/dev/shm` (one 64-byte slot per rank of its
//! host) and names it to each worker in [`FILE_VAR`] and [`SLOT_VAR`]. A worker's collectives
//! write to its slot: the operation they are in (number and kind) while inside one, how many
//! operations it has completed, and a beat counter bumped on every operation's start and end and
//! by [`beat`] (which a program calls in long phases without collectives: evaluation, saving).
//! Every write is one relaxed atomic store into shared memory: no syscall, no thread.
//!
//! The launcher samples the counters and measures on its own clock how long each has stood
//! still. As PyTorch's flight recorder compares "last enqueued / last completed" sequence numbers
//! across ranks, [`find_hung`] names the rank others are waiting on: a rank *outside* any
//! collective whose counter has not moved for the limit, while at least one other rank has waited
//! for the limit *inside* a collective that the first has not entered yet. (Only the wait
//! counts: ranks whose steps take minutes between collectives are never named for a skew of a
//! few seconds.) A rank blocked inside a collective
//! (waiting for a hung peer) is never the one named; when every rank is inside a collective (a
//! network fault) nobody is, and the data timeout decides. A worker that never joins a
//! communicator leaves its slot empty and is never judged.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::MmapMut;

use crate::wire::frame::Kind;

/// The variable naming the progress board's file.
pub const FILE_VAR: &str = crate::worker_env::ringdet::PROGRESS_FILE;
/// The variable naming this worker's slot in it.
pub const SLOT_VAR: &str = crate::worker_env::ringdet::PROGRESS_SLOT;
/// Bytes per slot (a cache line, so ranks do not share one).
pub const SLOT_BYTES: usize = 64;

/// Word offsets in a slot.
const PID: usize = 0;
const BEATS: usize = 1;
/// Number + 1 of the operation in progress; 0 outside one.
const ENTERED: usize = 2;
/// The kind of the operation in progress (or the last one).
const KIND: usize = 3;
/// Operations completed (= the number of the next one).
const COMPLETED: usize = 4;

/// A mapped progress board.
pub struct Board {
    map: MmapMut,
    slots: usize,
    path: PathBuf,
}

/// What one slot says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlotState {
    /// The pid of the worker that joined through this slot; 0 while none has.
    pub pid: u32,
    /// Beats so far (changes whenever the worker makes progress).
    pub beats: u64,
    /// The operation it is inside, as (kind name, number); None between operations.
    pub in_op: Option<(&'static str, u64)>,
    /// Operations it has completed (the number of its next one).
    pub completed: u64,
    /// The kind of its last operation, if any.
    pub last_kind: Option<&'static str>,
}

impl Board {
    /// Creates (or truncates) a board of `slots` empty slots at `path`, mode 0600.
    pub fn create(path: &Path, slots: usize) -> std::io::Result<Board> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        file.set_len((slots.max(1) * SLOT_BYTES) as u64)?;
        Board::map(file, path, slots)
    }

    /// Opens an existing board.
    pub fn open(path: &Path) -> std::io::Result<Board> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let slots = file.metadata()?.len() as usize / SLOT_BYTES;
        Board::map(file, path, slots)
    }

    fn map(file: std::fs::File, path: &Path, slots: usize) -> std::io::Result<Board> {
        // SAFETY: the file is a board: every process maps it shared and touches it only through
        // aligned atomic words (`word`), so concurrent writers cannot tear a value.
        let map = unsafe { MmapMut::map_mut(&file)? };
        if map.len() < slots * SLOT_BYTES {
            return Err(std::io::Error::other(
                "progress board shorter than its slots",
            ));
        }
        Ok(Board {
            map,
            slots,
            path: path.to_path_buf(),
        })
    }

    /// Its file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.slots
    }

    fn word(&self, slot: usize, index: usize) -> &AtomicU64 {
        let offset = slot * SLOT_BYTES + index * 8;
        assert!(slot < self.slots && index < SLOT_BYTES / 8);
        // SAFETY: in bounds (checked above and at mapping), 8-byte aligned (the mapping is
        // page-aligned, slots and words are multiples of 8), and the memory lives as long as
        // `self`; AtomicU64 has the layout of u64.
        unsafe { &*(self.map.as_ptr().add(offset) as *const AtomicU64) }
    }

    /// Reads slot `slot`; an out-of-range slot reads empty.
    pub fn read(&self, slot: usize) -> SlotState {
        if slot >= self.slots {
            return SlotState::default();
        }
        let kind =
            Kind::from_u8(self.word(slot, KIND).load(Ordering::Acquire) as u8).map(Kind::name);
        let entered = self.word(slot, ENTERED).load(Ordering::Acquire);
        SlotState {
            pid: self.word(slot, PID).load(Ordering::Acquire) as u32,
            beats: self.word(slot, BEATS).load(Ordering::Acquire),
            in_op: (entered > 0).then(|| (kind.unwrap_or("collective"), entered - 1)),
            completed: self.word(slot, COMPLETED).load(Ordering::Acquire),
            last_kind: kind,
        }
    }

    /// Marks `slot` as this process's and counts a first beat.
    pub fn attach(&self, slot: usize) {
        self.word(slot, PID)
            .store(u64::from(std::process::id()), Ordering::Release);
        self.word(slot, BEATS).fetch_add(1, Ordering::Release);
    }

    fn bump(&self, slot: usize) {
        self.word(slot, BEATS).fetch_add(1, Ordering::Release);
    }
}

/// This process's slot, once looked up from the environment (None when not under a launcher
/// that keeps a board, or when the board cannot be opened).
fn mine() -> Option<&'static (Board, usize)> {
    static MINE: OnceLock<Option<(Board, usize)>> = OnceLock::new();
    MINE.get_or_init(|| {
        let path = std::env::var_os(FILE_VAR)?;
        let slot: usize = std::env::var(SLOT_VAR).ok()?.parse().ok()?;
        match Board::open(Path::new(&path)) {
            Ok(board) if slot < board.slots() => {
                board.attach(slot);
                Some((board, slot))
            }
            Ok(_) => {
                tracing::warn!("{SLOT_VAR}={slot} is past the progress board's end: no heartbeats");
                None
            }
            Err(err) => {
                tracing::warn!(
                    "cannot open the progress board {}: {err}; no heartbeats",
                    Path::new(&path).display()
                );
                None
            }
        }
    })
    .as_ref()
}

/// Tells the launcher this rank is making progress. Call it in long phases without collectives
/// (an evaluation loop, a checkpoint write), at least once per stall limit (20 s by default);
/// it costs one atomic add, and nothing when no launcher watches.
pub fn beat() {
    if let Some((board, slot)) = mine() {
        board.bump(*slot);
    }
}

/// Joins the board named by the environment now (the first collective would otherwise), so
/// that the launcher judges this rank from the start.
pub fn attach() {
    let _ = mine();
}

/// Marks an operation in progress until dropped (the operation ended, well or not).
pub(crate) struct InOp(());

/// Records that operation `op_id` of `kind` has started on this rank.
pub(crate) fn enter(kind: Kind, op_id: u64) -> InOp {
    if let Some((board, slot)) = mine() {
        board
            .word(*slot, KIND)
            .store(kind as u64, Ordering::Release);
        board
            .word(*slot, ENTERED)
            .store(op_id + 1, Ordering::Release);
        board.bump(*slot);
    }
    InOp(())
}

impl Drop for InOp {
    fn drop(&mut self) {
        if let Some((board, slot)) = mine() {
            let entered = board.word(*slot, ENTERED).swap(0, Ordering::AcqRel);
            board
                .word(*slot, COMPLETED)
                .fetch_max(entered, Ordering::AcqRel);
            board.bump(*slot);
        }
    }
}

/// One rank's progress as a launcher sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankProgress {
    /// Global rank.
    pub rank: usize,
    /// The operation it is inside, as (kind name, number); None between operations.
    pub in_op: Option<(String, u64)>,
    /// Operations it has completed.
    pub completed: u64,
    /// The kind of its last operation.
    pub last_kind: Option<String>,
    /// How long its beat counter has stood still, in ms.
    pub idle_ms: u64,
}

/// A rank that stopped making progress while others wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hung {
    /// Index of the hung rank in the slice given to [`find_hung`].
    pub suspect: usize,
    /// Indexes of the ranks waiting inside a collective it has not entered.
    pub waiters: Vec<usize>,
}

/// The rank that everyone else waits on, if any: outside any collective, its counter still for at
/// least `limit_ms`, and at least one other rank waiting for at least `limit_ms` inside a
/// collective numbered at or after the suspect's next one. Of several, the one furthest behind
/// (fewest completed operations), then the one still the longest.
pub fn find_hung(ranks: &[RankProgress], limit_ms: u64) -> Option<Hung> {
    let waiters_of = |next: u64| -> Vec<usize> {
        ranks
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.idle_ms >= limit_ms && r.in_op.as_ref().is_some_and(|(_, id)| *id >= next)
            })
            .map(|(i, _)| i)
            .collect()
    };
    ranks
        .iter()
        .enumerate()
        .filter(|(_, r)| r.in_op.is_none() && r.idle_ms >= limit_ms)
        .map(|(i, r)| (i, r, waiters_of(r.completed)))
        .filter(|(_, _, waiters)| !waiters.is_empty())
        .min_by_key(|(_, r, _)| (r.completed, u64::MAX - r.idle_ms))
        .map(|(suspect, _, waiters)| Hung { suspect, waiters })
}

/// `after all_reduce #12` or `before its first collective`: where a rank outside a collective
/// stands.
pub fn describe_position(rank: &RankProgress) -> String {
    match (&rank.last_kind, rank.completed) {
        (Some(kind), n) if n > 0 => format!("after {kind} #{}", n - 1),
        _ => "before its first collective".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank(rank: usize, in_op: Option<u64>, completed: u64, idle_ms: u64) -> RankProgress {
        RankProgress {
            rank,
            in_op: in_op.map(|id| ("all_reduce".to_string(), id)),
            completed,
            last_kind: Some("all_reduce".into()),
            idle_ms,
        }
    }

    #[test]
    fn the_rank_outside_the_collective_others_wait_in_is_named() {
        let ranks = [
            rank(0, Some(7), 7, 21_000),
            rank(1, None, 7, 21_000),
            rank(2, Some(7), 7, 21_000),
        ];
        let hung = find_hung(&ranks, 20_000).unwrap();
        assert_eq!((hung.suspect, hung.waiters), (1, vec![0, 2]));
        assert_eq!(describe_position(&ranks[1]), "after all_reduce #6");
    }

    #[test]
    fn nobody_is_named_when_all_wait_none_waits_or_it_is_too_early() {
        // Everyone inside a collective: a network fault, for the data timeout.
        let all_in = [rank(0, Some(3), 3, 60_000), rank(1, Some(3), 3, 60_000)];
        assert_eq!(find_hung(&all_in, 20_000), None);
        // Everyone computing (a long evaluation everywhere): nobody waits.
        let none_in = [rank(0, None, 3, 60_000), rank(1, None, 3, 60_000)];
        assert_eq!(find_hung(&none_in, 20_000), None);
        // Still within the limit.
        let early = [rank(0, Some(3), 3, 19_000), rank(1, None, 3, 19_000)];
        assert_eq!(find_hung(&early, 20_000), None);
        // Steps of a minute between collectives, rank 0 a second faster: it has waited 1 s.
        let long_steps = [rank(0, Some(3), 3, 1_000), rank(1, None, 3, 60_000)];
        assert_eq!(find_hung(&long_steps, 20_000), None);
        // A rank waiting in an older collective is not waiting for one that completed it.
        let older = [rank(0, Some(2), 2, 30_000), rank(1, None, 3, 30_000)];
        assert_eq!(find_hung(&older, 20_000), None);
    }

    #[test]
    fn of_two_idle_ranks_the_one_furthest_behind_is_named() {
        let ranks = [
            rank(0, None, 5, 25_000),
            rank(1, Some(5), 5, 25_000),
            rank(2, None, 4, 22_000),
        ];
        let hung = find_hung(&ranks, 20_000).unwrap();
        assert_eq!(hung.suspect, 2);
    }

    #[test]
    fn a_board_round_trips_operations_and_beats() {
        let path =
            std::env::temp_dir().join(format!("ringdet-progress-test-{}", std::process::id()));
        let board = Board::create(&path, 2).unwrap();
        assert_eq!(board.read(1), SlotState::default());
        board.attach(1);
        let other = Board::open(&path).unwrap();
        let after_attach = other.read(1);
        assert_eq!(after_attach.pid, std::process::id());
        assert_eq!(after_attach.in_op, None);
        board
            .word(1, KIND)
            .store(Kind::Broadcast as u64, Ordering::Release);
        board.word(1, ENTERED).store(4, Ordering::Release);
        board.bump(1);
        let inside = other.read(1);
        assert_eq!(inside.in_op, Some(("broadcast", 3)));
        assert!(inside.beats > after_attach.beats);
        assert_eq!(other.read(0), SlotState::default());
        assert_eq!(other.read(9), SlotState::default());
        std::fs::remove_file(&path).unwrap();
    }
}
