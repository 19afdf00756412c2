//! Log files: `log_dir/workerlog.N` per worker (N = global rank; appended to, after a header
//! line, so earlier runs stay), `log_dir/endpoints.log`, the tail of a failed worker's log, and
//! the console echo of chosen ranks with a `[rN]` prefix.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{LaunchError, Result};
use ringdet_collective::worker_env::{paddle, ringdet};

/// Lines of a failed worker's log shown on the console.
pub const TAIL_LINES: usize = 30;

/// One worker's log file and where this run's output starts in it.
pub struct WorkerLog {
    /// `log_dir/workerlog.N`.
    pub path: PathBuf,
    /// The open file (workers write through their own O_APPEND descriptors).
    pub file: File,
    /// Byte offset where this run's output begins.
    pub start: u64,
}

/// Opens `log_dir/workerlog.<rank>` for appending and writes a header naming the run.
pub fn open_worker_log(log_dir: &Path, rank: usize, header: &str) -> Result<WorkerLog> {
    let path = log_dir.join(format!("workerlog.{rank}"));
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(LaunchError::io(format!(
            "cannot open worker log {}",
            path.display()
        )))?;
    writeln!(file, "==== {header} ====")
        .map_err(LaunchError::io(format!("cannot write {}", path.display())))?;
    let start = file
        .seek(SeekFrom::End(0))
        .map_err(LaunchError::io(format!(
            "cannot seek in {}",
            path.display()
        )))?;
    Ok(WorkerLog { path, file, start })
}

/// Writes `log_dir/endpoints.log`: one `rank ip:port` line per rank.
pub fn write_endpoints(log_dir: &Path, endpoints: &[SocketAddr]) -> Result<()> {
    let path = log_dir.join("endpoints.log");
    let mut text = format!(
        "# {} = {}: rank ip:port\n",
        ringdet::ENDPOINTS,
        paddle::TRAINER_ENDPOINTS
    );
    for (rank, endpoint) in endpoints.iter().enumerate() {
        text += &format!("{rank} {endpoint}\n");
    }
    std::fs::write(&path, text).map_err(LaunchError::io(format!("cannot write {}", path.display())))
}

/// The last `n` lines written to `path` after byte `start` (long lines are shortened).
pub fn tail(path: &Path, start: u64, n: usize) -> Vec<String> {
    let mut bytes = Vec::new();
    let read = File::open(path).and_then(|mut f| {
        let len = f.metadata()?.len();
        // Read at most the last 256 KiB: enough for 30 lines of any sane log.
        f.seek(SeekFrom::Start(start.max(len.saturating_sub(256 * 1024))))?;
        f.read_to_end(&mut bytes)
    });
    if read.is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|line| {
            let mut line = line.to_string();
            if line.len() > 500 {
                let cut = (0..=500)
                    .rev()
                    .find(|&i| line.is_char_boundary(i))
                    .unwrap_or(0);
                line.truncate(cut);
                line += " ...";
            }
            line
        })
        .collect()
}

/// Echoes new complete lines of a log to stdout with a prefix, following the file as it grows.
pub struct Follower {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Follower {
    /// Starts following `path` from byte `start`, printing each line after `prefix` (`[r0] `,
    /// or empty to show the worker's output as is).
    pub fn start(path: PathBuf, start: u64, prefix: String) -> std::io::Result<Follower> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("follow {}", path.display()))
            .spawn(move || follow(&path, start, &prefix, &flag))?;
        Ok(Follower { stop, thread })
    }

    /// Prints what is left and stops.
    pub fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.thread().unpark();
        let _ = self.thread.join();
    }
}

fn follow(path: &Path, start: u64, prefix: &str, stop: &AtomicBool) {
    let Ok(mut file) = File::open(path) else {
        return;
    };
    if file.seek(SeekFrom::Start(start)).is_err() {
        return;
    }
    let mut pending = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        loop {
            match file.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
            }
        }
        let mut out = std::io::stdout().lock();
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let _ = write!(out, "{prefix}{}", String::from_utf8_lossy(&line));
        }
        if stopping {
            if !pending.is_empty() {
                let _ = writeln!(out, "{prefix}{}", String::from_utf8_lossy(&pending));
            }
            let _ = out.flush();
            return;
        }
        let _ = out.flush();
        drop(out);
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_reads_only_this_run() {
        let dir = std::env::temp_dir().join(format!("ringdet-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut log = open_worker_log(&dir, 3, "run one").unwrap();
        writeln!(log.file, "old").unwrap();
        let mut log = open_worker_log(&dir, 3, "run two").unwrap();
        for i in 0..40 {
            writeln!(log.file, "line {i}").unwrap();
        }
        let last = tail(&log.path, log.start, TAIL_LINES);
        assert_eq!(last.len(), 30);
        assert_eq!(last[0], "line 10");
        assert_eq!(last[29], "line 39");
        let mut short = open_worker_log(&dir, 4, "x").unwrap();
        writeln!(short.file, "only").unwrap();
        assert_eq!(tail(&short.path, short.start, TAIL_LINES), ["only"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
