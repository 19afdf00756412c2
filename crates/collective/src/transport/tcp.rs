//! TCP socket setup: bind to the given IP (never 0.0.0.0 unless asked), `TCP_NODELAY`, optional
//! fixed buffers, connect with retries, and blocking reads and writes that must all end by one
//! deadline (for handshakes, which a peer must not stretch by trickling bytes).

use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Socket buffer size to request, from `RINGDET_SOCKET_BUFFER` (bytes); by default none is set
/// and the kernel autotunes, which measured faster on loopback than a fixed 4 MiB (smaller
/// buffers stay in cache).
fn socket_buffer() -> Option<usize> {
    std::env::var("RINGDET_SOCKET_BUFFER")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0)
}

/// Binds a listener on exactly `addr` with `SO_REUSEADDR`.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if let Some(b) = socket_buffer() {
        let _ = s.set_recv_buffer_size(b);
        let _ = s.set_send_buffer_size(b);
    }
    s.bind(&addr.into())?;
    s.listen(128)?;
    Ok(s.into())
}

/// Applies the options every data socket gets.
pub fn tune(s: &TcpStream) -> io::Result<()> {
    s.set_nodelay(true)?;
    if let Some(b) = socket_buffer() {
        let sock = socket2::SockRef::from(s);
        let _ = sock.set_send_buffer_size(b);
        let _ = sock.set_recv_buffer_size(b);
    }
    Ok(())
}

/// Connects to `addr`, retrying with exponential backoff (1 ms doubling to 200 ms) until
/// `deadline`. The last error is returned when the deadline passes.
pub fn connect_retry(addr: SocketAddr, deadline: Instant) -> io::Result<TcpStream> {
    let mut backoff = Duration::from_millis(1);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = if left.is_zero() {
            Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"))
        } else {
            TcpStream::connect_timeout(&addr, left.min(Duration::from_secs(5)))
        };
        match attempt {
            Ok(s) => {
                tune(&s)?;
                return Ok(s);
            }
            Err(e) => {
                if Instant::now() + backoff >= deadline {
                    return Err(e);
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_millis(200));
            }
        }
    }
}

/// A blocking TCP stream whose every read and write must end by one `deadline`: before each call
/// the time left becomes the socket's timeout, so a peer that sends or takes one byte at a time
/// cannot stretch the exchange past the deadline (a per-call timeout would restart with every
/// byte). Past the deadline every call fails with [`io::ErrorKind::TimedOut`].
pub struct DeadlineStream<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
}

impl<'a> DeadlineStream<'a> {
    /// Wraps a blocking `stream` (the caller resets its timeouts once done with this).
    pub fn new(stream: &'a TcpStream, deadline: Instant) -> DeadlineStream<'a> {
        DeadlineStream { stream, deadline }
    }

    fn time_left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
        }
        Ok(left)
    }
}

impl Read for DeadlineStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(Some(self.time_left()?))?;
        let mut s = self.stream;
        s.read(buf)
    }
}

impl Write for DeadlineStream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(Some(self.time_left()?))?;
        let mut s = self.stream;
        s.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
