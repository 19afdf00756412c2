//! A connected stream to one peer, with the peer's rank and address for error messages.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

/// The stream under a link: TCP between ranks, a Unix socket pair in tests.
#[derive(Debug)]
pub enum Stream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// One end of an in-memory socket pair.
    Unix(UnixStream),
}

/// A connected, non-blocking stream to `peer_rank` at `peer_addr`.
#[derive(Debug)]
pub struct Link {
    stream: Stream,
    /// Rank at the other end.
    pub peer_rank: usize,
    /// Its address, as shown in errors.
    pub peer_addr: String,
}

impl Link {
    /// Wraps a stream and switches it to non-blocking mode.
    pub fn new(stream: Stream, peer_rank: usize, peer_addr: String) -> io::Result<Link> {
        match &stream {
            Stream::Tcp(s) => s.set_nonblocking(true)?,
            Stream::Unix(s) => s.set_nonblocking(true)?,
        }
        Ok(Link {
            stream,
            peer_rank,
            peer_addr,
        })
    }

    /// A pair of links joined in memory (tests of the schedule and engine without a network).
    pub fn pair(rank_a: usize, rank_b: usize) -> io::Result<(Link, Link)> {
        let (a, b) = UnixStream::pair()?;
        Ok((
            Link::new(Stream::Unix(a), rank_b, format!("memory:{rank_b}"))?,
            Link::new(Stream::Unix(b), rank_a, format!("memory:{rank_a}"))?,
        ))
    }

    /// Non-blocking read; `Ok(0)` means the peer closed the connection.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.stream {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }

    /// Non-blocking look at incoming bytes without consuming them; `Ok(0)` means closed.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let fd = self.as_raw_fd();
        // SAFETY: `buf` is a valid writable slice; MSG_PEEK leaves the bytes queued.
        let n = unsafe {
            libc::recv(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Non-blocking vectored write (`writev`): header and payload leave in one call.
    pub fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match &mut self.stream {
            Stream::Tcp(s) => s.write_vectored(bufs),
            Stream::Unix(s) => s.write_vectored(bufs),
        }
    }

    /// Shuts both directions down: the peer sees the connection close and a blocked `poll` wakes.
    pub fn shutdown(&self) {
        let _ = match &self.stream {
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }

    /// Shuts the sending direction only: the peer reads everything sent so far (an abort report
    /// included), then end of file. Shutting both directions with the peer's data still unread
    /// makes the kernel answer with a reset, and a reset discards what the peer has not read yet,
    /// so a survivor could lose the report that names the rank that really failed.
    pub fn shutdown_write(&self) {
        let _ = match &self.stream {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
        };
    }

    /// A second handle on the same socket (for [`AbortHandle`](crate::AbortHandle)).
    pub fn try_clone_stream(&self) -> io::Result<Stream> {
        Ok(match &self.stream {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
        })
    }
}

impl Stream {
    /// Shuts both directions down.
    pub fn shutdown(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }
}

impl AsRawFd for Link {
    fn as_raw_fd(&self) -> RawFd {
        match &self.stream {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }
}
