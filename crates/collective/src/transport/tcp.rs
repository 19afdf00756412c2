//! TCP socket setup: bind to the given IP (never 0.0.0.0 unless asked), `TCP_NODELAY`, optional
//! fixed buffers, connect with retries, and blocking reads and writes that must all end by one
//! deadline (for handshakes, which a peer must not stretch by trickling bytes).

use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Socket buffer size to request, from `RINGDET_SOCKET_BUFFER` (bytes, or with a `K`/`M`
/// suffix: KiB, MiB); by default none is set and the kernel autotunes each connection up to
/// `net.ipv4.tcp_wmem`/`tcp_rmem`'s maximum, which measured faster on loopback than a fixed
/// 4 MiB (smaller buffers stay in cache) and follows the bandwidth-delay product of a real link
/// by itself. A fixed size turns autotuning off for the socket and is capped by
/// `net.core.wmem_max`/`rmem_max`: [`tune`] warns when the kernel granted less than asked.
/// A value that does not parse is reported once and ignored.
fn socket_buffer() -> Option<usize> {
    static PARSED: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *PARSED.get_or_init(|| {
        let raw = std::env::var("RINGDET_SOCKET_BUFFER").ok()?;
        match parse_size(&raw) {
            Some(0) => None,
            Some(v) => Some(v),
            None => {
                tracing::warn!(
                    "RINGDET_SOCKET_BUFFER={raw:?} is not a size in bytes (e.g. 4194304, 4M): \
                     ignored, the kernel autotunes the socket buffers"
                );
                None
            }
        }
    })
}

/// Default of [`send_backlog`]: 32 KiB.
pub const DEFAULT_SEND_BACKLOG: usize = 32 << 10;

/// Most bytes a data socket holds written but not yet sent (`TCP_NOTSENT_LOWAT`), from
/// `RINGDET_SEND_BACKLOG` (bytes, or with a `K`/`M` suffix; `0` leaves the kernel's default,
/// no limit); [`DEFAULT_SEND_BACKLOG`] when unset. A short backlog keeps a frame's bytes moving
/// from the sender's copy to the receiver's while they are still in cache: where the cores, not
/// the links, set the rate, 32 KiB moved 4 namespace hosts at 10 Gbit/s 0.72 → 0.89 GB/s busbw
/// and 8 hosts 0.36 → 0.45 (docs/scaling.md). Unlike a fixed `SO_SNDBUF` it does not cap the
/// bytes in flight, so links with a large bandwidth-delay product still fill (2 hosts at
/// 1 Gbit/s with 5 ms each way: 0.121 GB/s either way). A value that does not parse is reported
/// once and the default kept.
pub fn send_backlog() -> Option<usize> {
    static PARSED: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *PARSED.get_or_init(|| {
        let Ok(raw) = std::env::var("RINGDET_SEND_BACKLOG") else {
            return Some(DEFAULT_SEND_BACKLOG);
        };
        match parse_size(&raw) {
            Some(0) => None,
            Some(v) => Some(v.min(u32::MAX as usize)),
            None => {
                tracing::warn!(
                    "RINGDET_SEND_BACKLOG={raw:?} is not a size in bytes (e.g. 32768, 32K, 0 for \
                     the kernel's default): ignored, {DEFAULT_SEND_BACKLOG} B kept"
                );
                Some(DEFAULT_SEND_BACKLOG)
            }
        }
    })
}

/// Parses `1234`, `64K` or `4M` (binary units, case-insensitive) into bytes.
pub fn parse_size(raw: &str) -> Option<usize> {
    let t = raw.trim();
    let (digits, unit) = match t.char_indices().last()? {
        (i, 'k' | 'K') => (&t[..i], 1usize << 10),
        (i, 'm' | 'M') => (&t[..i], 1 << 20),
        _ => (t, 1),
    };
    digits.trim().parse::<usize>().ok()?.checked_mul(unit)
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

/// Applies the options every data socket gets: `TCP_NODELAY`, the [`send_backlog`] limit, and
/// the fixed buffers of `RINGDET_SOCKET_BUFFER` if set. Linux doubles a requested size for its bookkeeping and caps
/// it at `net.core.{w,r}mem_max`; a socket that got less than asked is reported once per process
/// (a ring whose buffers are below the link's bandwidth-delay product cannot fill the link).
pub fn tune(s: &TcpStream) -> io::Result<()> {
    s.set_nodelay(true)?;
    if let Some(backlog) = send_backlog() {
        // Best effort: a kernel without the option (before 3.12) sends as before.
        let _ = socket2::SockRef::from(s).set_tcp_notsent_lowat(backlog as u32);
    }
    if let Some(b) = socket_buffer() {
        let sock = socket2::SockRef::from(s);
        let _ = sock.set_send_buffer_size(b);
        let _ = sock.set_recv_buffer_size(b);
        let got = (
            sock.send_buffer_size().unwrap_or(0),
            sock.recv_buffer_size().unwrap_or(0),
        );
        if got.0 < b || got.1 < b {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    "RINGDET_SOCKET_BUFFER={b}: the kernel granted {} B to send and {} B to \
                     receive (capped by net.core.wmem_max / rmem_max); raise those sysctls or \
                     leave RINGDET_SOCKET_BUFFER unset to let the kernel autotune",
                    got.0,
                    got.1
                );
            });
        }
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

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("4194304"), Some(4 << 20));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size(" 4m "), Some(4 << 20));
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("4G"), None);
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn data_sockets_get_the_send_backlog() -> std::io::Result<()> {
        let listener = super::listen(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr()?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let client = super::connect_retry(addr, deadline)?;
        let (server, _) = listener.accept()?;
        super::tune(&server)?;
        let want = super::send_backlog().map_or(0, |b| b as u32);
        for s in [&client, &server] {
            let sock = socket2::SockRef::from(s);
            assert_eq!(sock.tcp_notsent_lowat()?, want);
            assert!(sock.tcp_nodelay()?);
        }
        if std::env::var_os("RINGDET_SEND_BACKLOG").is_none() {
            assert_eq!(want, super::DEFAULT_SEND_BACKLOG as u32);
        }
        Ok(())
    }
}
