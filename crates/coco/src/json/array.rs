//! Parallel parsing of one large JSON array of objects (`annotations`, a results list).
//!
//! The array is cut into chunks at guessed element boundaries (a `}` `,` `{` sequence); each chunk is
//! parsed element by element on its own thread. A guess can be wrong (the pattern may sit inside a
//! string or a nested array), so a chunk's result is only used when the chunk before it, parsed from a
//! known element start, ended exactly where this chunk begins. Otherwise parsing resumes from the last
//! verified position. The result is therefore always that of a sequential parse.

use super::error::{JsonError, bare_message, invalid};
use super::source::FileBytes;
use rayon::prelude::*;
use serde::de::DeserializeOwned;

/// Bytes per chunk handed to one thread.
const CHUNK_BYTES: usize = 2 << 20;
/// Chunks per wave, per thread; after each wave parsed pages are released.
const CHUNKS_PER_THREAD: usize = 4;

pub(crate) fn skip_ws(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(pos) {
        pos += 1;
    }
    pos
}

/// Parses one JSON value starting at `pos`; returns it and the offset just after it.
pub(crate) fn parse_value<T: DeserializeOwned>(
    bytes: &[u8],
    pos: usize,
) -> Result<(T, usize), serde_json::Error> {
    let mut stream = serde_json::Deserializer::from_slice(&bytes[pos..]).into_iter::<T>();
    match stream.next() {
        Some(Ok(value)) => Ok((value, pos + stream.byte_offset())),
        Some(Err(err)) => Err(err),
        None => Err(serde::de::Error::custom("unexpected end of file")),
    }
}

/// Why a run stopped early.
enum Failure {
    /// Element `item` (within the run) starting at `offset` did not parse.
    Element { item: usize, offset: usize },
    /// After element `item`, neither `,` nor `]` followed, at `offset`.
    Separator { item: usize, offset: usize },
}

/// The elements parsed from one chunk.
struct Run<T> {
    start: usize,
    items: Vec<T>,
    /// Offset of the next element start (or just after `]` when `closed`).
    end: usize,
    closed: bool,
    failure: Option<Failure>,
}

/// Parses elements from `start` until the next element start is at or past `stop`, or `]` closes the
/// array. `after_open` marks the run that begins right after `[` (which may be empty).
fn run<T: DeserializeOwned>(bytes: &[u8], start: usize, stop: usize, after_open: bool) -> Run<T> {
    let mut out = Run {
        start,
        // Records are rarely under 64 bytes; reserving avoids regrowing a chunk's vector.
        items: Vec::with_capacity((stop.min(bytes.len()).saturating_sub(start) / 64).min(1 << 20)),
        end: start,
        closed: false,
        failure: None,
    };
    let mut pos = skip_ws(bytes, start);
    if after_open && bytes.get(pos) == Some(&b']') {
        out.closed = true;
        out.end = pos + 1;
        return out;
    }
    loop {
        let after = match parse_value::<T>(bytes, pos) {
            Ok((value, after)) => {
                out.items.push(value);
                after
            }
            Err(_) => {
                out.failure = Some(Failure::Element {
                    item: out.items.len(),
                    offset: pos,
                });
                out.end = pos;
                return out;
            }
        };
        let sep = skip_ws(bytes, after);
        match bytes.get(sep) {
            Some(b',') => {
                pos = skip_ws(bytes, sep + 1);
                if pos >= stop {
                    out.end = pos;
                    return out;
                }
            }
            Some(b']') => {
                out.closed = true;
                out.end = sep + 1;
                return out;
            }
            _ => {
                out.failure = Some(Failure::Separator {
                    item: out.items.len() - 1,
                    offset: sep,
                });
                out.end = sep;
                return out;
            }
        }
    }
}

/// The first guessed element boundary at or after `from`: the `{` of a `}` `,` `{` sequence.
fn guess_boundary(bytes: &[u8], from: usize) -> Option<usize> {
    let mut pos = from;
    while pos < bytes.len() {
        let open = pos + bytes[pos..].iter().position(|&b| b == b'{')?;
        let mut back = open;
        let mut step = |want: u8| {
            while back > 0 && matches!(bytes[back - 1], b' ' | b'\n' | b'\r' | b'\t') {
                back -= 1;
            }
            if back > 0 && bytes[back - 1] == want {
                back -= 1;
                true
            } else {
                false
            }
        };
        if step(b',') && step(b'}') {
            return Some(open);
        }
        pos = open + 1;
    }
    None
}

/// Parses the array whose `[` is at `open`, naming records `what[i]` in errors. Returns the elements
/// and the offset just after `]`.
pub(crate) fn parse_array<T: DeserializeOwned + Send>(
    file: &FileBytes,
    open: usize,
    what: &str,
) -> Result<(Vec<T>, usize), JsonError> {
    let bytes = file.bytes();
    let wave_chunks = rayon::current_num_threads().max(1) * CHUNKS_PER_THREAD;
    // Chunks' vectors, concatenated once at the end.
    let mut pieces: Vec<Vec<T>> = Vec::new();
    let mut count = 0usize;
    let mut pos = open + 1;
    let mut after_open = true;
    loop {
        // Chunk i spans bounds[i]..bounds[i+1]; the last bound ends the wave (or the file).
        let mut bounds = vec![pos];
        for j in 1..=wave_chunks {
            let target = pos + j * CHUNK_BYTES;
            let next = if target < bytes.len() {
                guess_boundary(bytes, target)
            } else {
                None
            };
            match next {
                Some(b) if b > bounds[bounds.len() - 1] => bounds.push(b),
                Some(_) => {}
                None => {
                    bounds.push(usize::MAX);
                    break;
                }
            }
        }
        let runs: Vec<Run<T>> = bounds
            .par_windows(2)
            .enumerate()
            .map(|(i, bounds)| run(bytes, bounds[0], bounds[1], after_open && i == 0))
            .collect();
        after_open = false;
        let mut expected = pos;
        for r in runs {
            if r.start < expected {
                continue; // a wrong guess, overtaken by the verified run before it
            }
            if r.start > expected {
                break; // a gap after a wrong guess: resume from `expected` in the next wave
            }
            if let Some(failure) = r.failure {
                return Err(element_error::<T>(file, what, count, failure));
            }
            count += r.items.len();
            pieces.push(r.items);
            expected = r.end;
            if r.closed {
                file.release_before(expected);
                let mut items = Vec::with_capacity(count);
                for piece in pieces {
                    items.extend(piece);
                }
                return Ok((items, expected));
            }
        }
        if expected >= bytes.len() {
            return Err(invalid(
                &file.name,
                bytes,
                bytes.len(),
                format!("{what}[{count}]"),
                "unexpected end of file inside the array".into(),
            ));
        }
        file.release_before(expected);
        pos = expected;
    }
}

/// Turns a run failure into an error naming record and field, e.g. `annotations[7].bbox`.
fn element_error<T: DeserializeOwned>(
    file: &FileBytes,
    what: &str,
    before: usize,
    failure: Failure,
) -> JsonError {
    let bytes = file.bytes();
    match failure {
        Failure::Separator { item, offset } => invalid(
            &file.name,
            bytes,
            offset,
            format!("{what}[{}]", before + item),
            "expected `,` or `]` after the record".into(),
        ),
        Failure::Element { item, offset } => {
            let record = format!("{what}[{}]", before + item);
            let mut de = serde_json::Deserializer::from_slice(&bytes[offset..]);
            match serde_path_to_error::deserialize::<_, T>(&mut de) {
                Ok(_) => invalid(&file.name, bytes, offset, record, "malformed record".into()),
                Err(err) => {
                    let path = err.path().to_string();
                    let inner = err.into_inner();
                    let location = if path.is_empty() || path == "." || path == "?" {
                        record
                    } else {
                        format!("{record}.{path}")
                    };
                    let at = offset_of(&bytes[offset..], inner.line(), inner.column());
                    invalid(
                        &file.name,
                        bytes,
                        offset + at,
                        location,
                        bare_message(&inner),
                    )
                }
            }
        }
    }
}

/// Byte offset of a 1-based (line, column) position in `bytes` (column counts bytes).
fn offset_of(bytes: &[u8], line: usize, column: usize) -> usize {
    if line == 0 {
        return 0;
    }
    let mut start = 0;
    for _ in 1..line {
        match bytes[start..].iter().position(|&b| b == b'\n') {
            Some(p) => start += p + 1,
            None => break,
        }
    }
    (start + column.saturating_sub(1)).min(bytes.len())
}
