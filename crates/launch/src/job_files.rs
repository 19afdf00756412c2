//! The record that lets the job's `/dev/shm` files be removed even when the launcher cannot do
//! it itself. The collective's ranks of one host share files `/dev/shm/ringdet-<tag>-*` (the tag
//! hashes the job token and endpoints); a launcher removes them once its workers have exited,
//! but a SIGKILLed launcher cannot. So while its workers run, the launcher keeps a record,
//! `/dev/shm/ringdet-launcher-<pid>.job` (mode 0600: it holds the job token), naming its pid, its
//! start time and what the tag is made of. Its orphan sentinel removes the job's files and the
//! record when the launcher dies, and a new job on the host removes the files of every record
//! whose launcher is gone (its pid no longer runs, or runs another process).

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use tracing::{debug, warn};

const DIR: &str = "/dev/shm";
const PREFIX: &str = "ringdet-launcher-";
const SUFFIX: &str = ".job";
const HEADER: &str = "ringdet launch job files v1";

/// The progress board of the launcher with pid `launcher_pid` (see `ringdet_collective::progress`),
/// removed with its record.
pub fn progress_path(launcher_pid: u32) -> PathBuf {
    Path::new(DIR).join(format!("{PREFIX}{launcher_pid}.progress"))
}

/// The record of the launcher with pid `launcher_pid`.
pub fn record_path(launcher_pid: u32) -> PathBuf {
    Path::new(DIR).join(format!("{PREFIX}{launcher_pid}{SUFFIX}"))
}

/// A process's start time (clock ticks after boot, field 22 of `/proc/<pid>/stat`), which
/// tells a pid's current process from an earlier one with the same pid; None if it is gone.
pub fn start_time(pid: u32) -> Option<u64> {
    crate::procs::stat_field(pid, 22)?.parse().ok()
}

/// Writes this launcher's record for the job of `token` and `endpoints`; returns its path.
pub fn write_record(token: &str, endpoints: &[SocketAddr]) -> std::io::Result<PathBuf> {
    let pid = std::process::id();
    let path = record_path(pid);
    // Without its start time the record could not tell this launcher from a dead one.
    let started = start_time(pid)
        .ok_or_else(|| std::io::Error::other("cannot read this process's start time from /proc"))?;
    let endpoints: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
    let text = format!(
        "{HEADER}\n{pid} {started}\n{token}\n{}\n",
        endpoints.join(",")
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(text.as_bytes())?;
    Ok(path)
}

/// A parsed record: the launcher's pid and start time, the job's token and endpoints.
struct Record {
    pid: u32,
    start_time: u64,
    token: String,
    endpoints: Vec<SocketAddr>,
}

fn read_record(path: &Path) -> Option<Record> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    if lines.next()? != HEADER {
        return None;
    }
    let (pid, start_time) = lines.next()?.split_once(' ')?;
    let token = lines.next()?.to_string();
    let endpoints = lines
        .next()?
        .split(',')
        .map(str::parse)
        .collect::<Result<Vec<SocketAddr>, _>>()
        .ok()?;
    Some(Record {
        pid: pid.parse().ok()?,
        start_time: start_time.parse().ok()?,
        token,
        endpoints,
    })
}

/// Removes the job files named by the record at `path`, then the record; returns how many job
/// files it removed. A record that cannot be read is removed alone.
pub fn remove_job(path: &Path) -> std::io::Result<usize> {
    let removed = match read_record(path) {
        Some(record) => {
            let _ = std::fs::remove_file(progress_path(record.pid));
            ringdet_collective::remove_host_files(record.token.as_bytes(), &record.endpoints)?
        }
        None => 0,
    };
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(removed),
    }
}

/// Removes the job files of every record whose launcher is gone; returns how many files.
pub fn remove_stale() -> usize {
    let Ok(dir) = std::fs::read_dir(DIR) else {
        return 0;
    };
    let mut removed = 0;
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with(PREFIX) && name.ends_with(SUFFIX)) {
            continue;
        }
        let path = entry.path();
        // A record that cannot be read (another user's) is left alone.
        let Some(record) = read_record(&path) else {
            continue;
        };
        let owner_alive = record.pid == std::process::id()
            || start_time(record.pid).is_some_and(|t| t == record.start_time);
        if owner_alive {
            continue;
        }
        match remove_job(&path) {
            Ok(n) => {
                debug!("removed {n} file(s) of a dead job ({})", path.display());
                removed += n;
            }
            Err(err) => warn!(
                "cannot remove the files of a dead job ({}): {err}",
                path.display()
            ),
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_start_time_and_a_dead_pid_has_none() {
        assert!(start_time(std::process::id()).is_some());
        assert_eq!(start_time(u32::MAX), None);
    }
}
