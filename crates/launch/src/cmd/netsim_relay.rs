//! `ringdet netsim-relay` (hidden): the switch of `scripts/netns-cluster.sh` when `--delay` or
//! `--loss` is asked for and the kernel has no `netem` qdisc. Every emulated host has a TUN device
//! (`eth0`, its address /24) in its network namespace instead of a veth into a bridge; this
//! process opens each of them from inside its namespace (setns(2) on `/var/run/netns/NS`), reads
//! the IPv4 packets a host sends, and writes each to the TUN of the host that owns its destination
//! address, after
//!
//! - dropping it with probability `--loss-pct` (a seeded generator per sending host; counted),
//! - pacing it at `--rate-bps` per receiving host (what the host receives: the sending side is
//!   shaped by htb on the host's TUN, as on the veth), tail-dropping beyond `--queue-bytes` of
//!   backlog (counted; the htb leaf's 1000-packet queue of the veth path),
//! - and holding it for `--delay-us` (one timer queue per receiving host: the delay is the same
//!   for every packet, so the queue stays in arrival order and nothing is reordered).
//!
//! It prints `ready` on stdout once every TUN is open, dies with its parent (`--parent`,
//! PR_SET_PDEATHSIG), and on SIGTERM or SIGINT prints what it forwarded and dropped, and its own
//! CPU time, to stderr and exits 0. Nothing it opens outlives it: the TUN devices belong to the
//! namespaces, which the script deletes.

use anyhow::{Context, Result, bail};
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Arguments of `ringdet netsim-relay`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// A host as NETNS=ADDRESS: its network namespace (a name under /var/run/netns) and its IPv4
    /// address; once per host.
    #[arg(long = "host", required = true, value_parser = parse_host)]
    pub hosts: Vec<(String, Ipv4Addr)>,
    /// Name of the (persistent) TUN device in every namespace.
    #[arg(long, default_value = "eth0")]
    pub dev: String,
    /// One-way delay added to every packet, in microseconds.
    #[arg(long, default_value_t = 0)]
    pub delay_us: u64,
    /// Probability of dropping a packet, in percent.
    #[arg(long, default_value_t = 0.0)]
    pub loss_pct: f64,
    /// Rate at which each host receives, in bit/s (0: as fast as the relay goes).
    #[arg(long, default_value_t = 0)]
    pub rate_bps: u64,
    /// Backlog per receiving host beyond which packets are dropped (with --rate-bps).
    #[arg(long, default_value_t = 1000 * 9000)]
    pub queue_bytes: u64,
    /// Seed of the loss generators.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Exit (SIGTERM) when this process, our parent, ends.
    #[arg(long)]
    pub parent: Option<u32>,
}

fn parse_host(s: &str) -> std::result::Result<(String, Ipv4Addr), String> {
    let (ns, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NETNS=ADDRESS"))?;
    let addr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an IPv4 address"))?;
    if ns.is_empty() || ns.contains('/') {
        return Err(format!("{ns:?} is not a namespace name"));
    }
    Ok((ns.to_string(), addr))
}

/// What the relay did, for the line it prints at the end.
#[derive(Default)]
struct Counters {
    packets: AtomicU64,
    bytes: AtomicU64,
    lost: AtomicU64,
    queue_full: AtomicU64,
    unroutable: AtomicU64,
    write_errors: AtomicU64,
}

/// The packets on their way to one host, in the order they leave.
#[derive(Default)]
struct Line {
    packets: VecDeque<(Instant, Vec<u8>)>,
    /// When the last packet queued here has been received in full at the rate.
    free_at: Option<Instant>,
}

/// One receiving host: its TUN and, with a delay or a rate, its timer queue.
struct Port {
    tun: File,
    line: Mutex<Line>,
    wake: Condvar,
}

impl Port {
    /// The queue, also after a thread panicked while holding it (the packets in it stay valid).
    fn lock_line(&self) -> MutexGuard<'_, Line> {
        self.line.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs the relay until SIGTERM or SIGINT (or the parent's death).
pub fn run(args: Args) -> Result<()> {
    if !(0.0..=100.0).contains(&args.loss_pct) {
        bail!("--loss-pct must be within 0..100, not {}", args.loss_pct);
    }
    // Block the stop signals in every thread; the main thread takes them with sigwait.
    // SAFETY: plain signal-set calls on a local set; pthread_sigmask affects this thread and the
    // threads it starts later.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    if let Some(parent) = args.parent {
        // SAFETY: prctl with integer arguments; getppid cannot fail.
        unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
                0,
                0,
                0,
            );
            if libc::getppid() as u32 != parent {
                bail!("the parent {parent} has already ended");
            }
        }
    }
    let mut by_addr = HashMap::new();
    let mut ports = Vec::new();
    for (i, (ns, addr)) in args.hosts.iter().enumerate() {
        if by_addr.insert(addr.octets(), i).is_some() {
            bail!("address {addr} given twice");
        }
        let tun =
            open_tun_in(ns, &args.dev).with_context(|| format!("TUN {} in {ns}", args.dev))?;
        ports.push(Arc::new(Port {
            tun,
            line: Mutex::new(Line::default()),
            wake: Condvar::new(),
        }));
    }
    let by_addr = Arc::new(by_addr);
    let counters = Arc::new(Counters::default());
    let delay = Duration::from_micros(args.delay_us);
    let queued = args.delay_us > 0 || args.rate_bps > 0;
    // A packet is dropped when the generator's next u64 is below this.
    let loss_below = (args.loss_pct / 100.0 * u64::MAX as f64) as u64;
    let started = Instant::now();
    for i in 0..ports.len() {
        if queued {
            let port = ports[i].clone();
            let counters = counters.clone();
            std::thread::Builder::new()
                .name(format!("relay-out-{i}"))
                .spawn(move || deliver(&port, &counters))
                .context("start a delivery thread")?;
        }
        let ports = ports.clone();
        let by_addr = by_addr.clone();
        let counters = counters.clone();
        let mut rng = SplitMix64(args.seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let (rate, limit) = (args.rate_bps, args.queue_bytes);
        std::thread::Builder::new()
            .name(format!("relay-in-{i}"))
            .spawn(move || {
                let mut buf = vec![0u8; 65536 + 4];
                let src = &ports[i].tun;
                loop {
                    let n = match read_packet(src, &mut buf) {
                        Ok(n) => n,
                        Err(e) => {
                            eprintln!("netsim-relay: reading host {i}'s TUN: {e}");
                            std::process::exit(1);
                        }
                    };
                    let packet = &buf[..n];
                    let dst = (n >= 20 && packet[0] >> 4 == 4)
                        .then(|| [packet[16], packet[17], packet[18], packet[19]])
                        .and_then(|a| by_addr.get(&a).copied());
                    let Some(dst) = dst else {
                        counters.unroutable.fetch_add(1, Relaxed);
                        continue;
                    };
                    if loss_below > 0 && rng.next() < loss_below {
                        counters.lost.fetch_add(1, Relaxed);
                        continue;
                    }
                    let port = &ports[dst];
                    if !queued {
                        send(port, packet, &counters);
                        continue;
                    }
                    let now = Instant::now();
                    let mut line = port.lock_line();
                    let mut due = now;
                    if rate > 0 {
                        let start = line.free_at.map_or(now, |f| f.max(now));
                        if (start - now).as_secs_f64() * rate as f64 / 8.0 > limit as f64 {
                            counters.queue_full.fetch_add(1, Relaxed);
                            continue;
                        }
                        due = start + Duration::from_secs_f64(n as f64 * 8.0 / rate as f64);
                        line.free_at = Some(due);
                    }
                    let was_empty = line.packets.is_empty();
                    line.packets.push_back((due + delay, packet.to_vec()));
                    drop(line);
                    if was_empty {
                        port.wake.notify_one();
                    }
                }
            })
            .context("start a reading thread")?;
    }
    println!("ready");
    std::io::stdout().flush().ok();
    let mut signal = 0;
    // SAFETY: sigwait on the set blocked above, with a valid out pointer.
    unsafe { libc::sigwait(&set, &mut signal) };
    let c = &counters;
    let packets = c.packets.load(Relaxed);
    let lost = c.lost.load(Relaxed);
    let offered = packets + lost + c.queue_full.load(Relaxed);
    eprintln!(
        "netsim-relay: {} packets ({:.1} MB) forwarded in {:.1} s; dropped {lost} at random \
         ({:.3} % of {offered}, asked {} %), {} on full queues, {} unroutable; {} write errors; \
         CPU {:.2} s",
        packets,
        c.bytes.load(Relaxed) as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        if offered > 0 {
            lost as f64 * 100.0 / offered as f64
        } else {
            0.0
        },
        args.loss_pct,
        c.queue_full.load(Relaxed),
        c.unroutable.load(Relaxed),
        c.write_errors.load(Relaxed),
        cpu_seconds(),
    );
    std::process::exit(0);
}

/// The delivery thread of one receiving host: writes each queued packet when it is due.
fn deliver(port: &Port, counters: &Counters) {
    // Wake on time: the default slack (50 us) would add to every delay.
    // SAFETY: prctl with integer arguments, for this thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0) };
    let mut batch = Vec::new();
    let mut line = port.lock_line();
    loop {
        let now = Instant::now();
        while line.packets.front().is_some_and(|(due, _)| *due <= now) {
            batch.extend(line.packets.pop_front().map(|(_, p)| p));
        }
        if !batch.is_empty() {
            drop(line);
            for packet in batch.drain(..) {
                send(port, &packet, counters);
            }
            line = port.lock_line();
            continue;
        }
        line = match line.packets.front() {
            None => port.wake.wait(line).unwrap_or_else(|e| e.into_inner()),
            Some(&(due, _)) => {
                port.wake
                    .wait_timeout(line, due - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
    }
}

/// Writes one packet to a host's TUN (a packet the host cannot take is lost, as on a wire).
fn send(port: &Port, packet: &[u8], counters: &Counters) {
    loop {
        // SAFETY: write(2) of an initialised buffer to an open descriptor.
        let n = unsafe { libc::write(port.tun.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
        if n >= 0 {
            counters.packets.fetch_add(1, Relaxed);
            counters.bytes.fetch_add(packet.len() as u64, Relaxed);
            return;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            counters.write_errors.fetch_add(1, Relaxed);
            return;
        }
    }
}

/// Reads one packet from a TUN.
fn read_packet(tun: &File, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        // SAFETY: read(2) into a buffer of the given length from an open descriptor.
        let n = unsafe { libc::read(tun.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Opens the TUN `dev` of network namespace `ns`: enters the namespace with this thread, opens
/// the device there and comes back (the descriptor stays bound to the namespace's device).
fn open_tun_in(ns: &str, dev: &str) -> Result<File> {
    let home = File::open("/proc/thread-self/ns/net").context("this thread's namespace")?;
    let there = File::open(format!("/var/run/netns/{ns}"))
        .with_context(|| format!("/var/run/netns/{ns}"))?;
    setns(&there).with_context(|| format!("enter namespace {ns}"))?;
    let tun = open_tun(dev);
    setns(&home).context("return to the relay's namespace")?;
    tun
}

fn setns(ns: &File) -> std::io::Result<()> {
    // SAFETY: setns(2) on an open namespace file; affects only this thread.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Attaches to the existing TUN `dev` of this thread's namespace (IFF_TUN | IFF_NO_PI: reads and
/// writes are bare IP packets).
fn open_tun(dev: &str) -> Result<File> {
    if dev.is_empty() || dev.len() >= libc::IFNAMSIZ {
        bail!("{dev:?} is not a device name");
    }
    // SAFETY: open(2) of a NUL-terminated path.
    let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("/dev/net/tun");
    }
    // SAFETY: fd was just opened and is owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(dev.bytes()) {
        *d = s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes the ifreq we pass, which outlives the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut ifr) } != 0 {
        return Err(std::io::Error::last_os_error()).context("TUNSETIFF");
    }
    Ok(File::from(fd))
}

/// User plus system CPU time of this process so far, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes the struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

/// Steele, Lea and Flood's SplitMix64: small, fast and good enough to decide drops.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse_as_namespace_and_address() {
        assert_eq!(
            parse_host("rdns-1-0=10.77.0.10").unwrap(),
            ("rdns-1-0".to_string(), Ipv4Addr::new(10, 77, 0, 10))
        );
        assert!(parse_host("rdns-1-0").is_err());
        assert!(parse_host("a/b=10.0.0.1").is_err());
        assert!(parse_host("a=10.0.0").is_err());
    }

    #[test]
    fn the_loss_threshold_drops_about_the_asked_share() {
        let mut rng = SplitMix64(7);
        let below = (0.01 * u64::MAX as f64) as u64;
        let drops = (0..1_000_000).filter(|_| rng.next() < below).count();
        assert!((9_000..11_000).contains(&drops), "{drops}");
    }
}
