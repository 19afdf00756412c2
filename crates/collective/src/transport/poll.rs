//! Waiting on several sockets at once with `poll(2)`, bounded by a timeout, and blocking helpers
//! for the few places that need a whole message with a deadline.

use super::Link;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Readable (or closed).
pub const READ: i16 = libc::POLLIN;
/// Writable.
pub const WRITE: i16 = libc::POLLOUT;
/// Ready flags that mean "try the read, it will say what happened".
pub const BROKEN: i16 = libc::POLLHUP | libc::POLLERR;

/// A `pollfd` for `link` with the given interest.
pub fn entry(link: &Link, events: i16) -> libc::pollfd {
    libc::pollfd {
        fd: link.as_raw_fd(),
        events,
        revents: 0,
    }
}

/// Blocks until one of `fds` is ready or `timeout` passes; `revents` are filled in.
pub fn wait(fds: &mut [libc::pollfd], timeout: Duration) -> io::Result<()> {
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // Round sub-millisecond waits up so that we block instead of spinning through poll.
    let ms = if ms == 0 && !timeout.is_zero() { 1 } else { ms };
    loop {
        // SAFETY: `fds` is a valid, exclusively borrowed array of `pollfd` of the given length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

fn wait_one(link: &Link, events: i16, deadline: Instant) -> io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
    }
    wait(&mut [entry(link, events)], left)
}

/// Reads exactly `buf.len()` bytes from a non-blocking link before `deadline`.
pub fn read_exact(link: &mut Link, buf: &mut [u8], deadline: Instant) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match link.read(&mut buf[got..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_one(link, READ, deadline)?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all of `buf` to a non-blocking link before `deadline`.
pub fn write_all(link: &mut Link, buf: &[u8], deadline: Instant) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match link.write_vectored(&[IoSlice::new(&buf[done..])]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_one(link, WRITE, deadline)?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads and discards until the peer closes its side, an error, or `deadline`: after reporting a
/// failure, a rank keeps its links open for a moment so the report is read before its process can
/// exit (closing a socket with unread data sends a reset, which discards the peer's unread data).
pub fn drain_until_eof(link: &mut Link, deadline: Instant) {
    let mut sink = [0u8; 64 * 1024];
    loop {
        match link.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if wait_one(link, READ, deadline).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
