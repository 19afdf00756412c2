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
//!
//! Faults (the script's test-only `--fault`, the same contract as with the bridge): on SIGUSR1 the
//! relay reads the `--control` file, one fault a line, `partition ADDRESS` or `link-down ADDRESS`
//! (the file only grows; a line already applied is a no-op), and from then on
//!
//! - `partition`: drops every packet from or to that host, silently (its link stays up), as the
//!   bridge does once the host's veth has left it;
//! - `link-down`: the same, and the host's `eth0` loses its carrier (TUNSETCARRIER on our
//!   descriptor), which is exactly what the host sees when the bridge side of its veth goes down:
//!   `eth0` stays administratively up with NO-CARRIER, its route is marked `linkdown`, and what it
//!   sends is dropped by the device, with no error to the sender. This is closer than taking the
//!   host's `eth0` down (`--link-down admin`, the fallback where the ioctl fails): that removes the
//!   host's route, so its sends fail at once with ENETUNREACH, which a pulled cable does not do.
//!
//! A downed TUN can fail the relay's reads (EIO or EBADFD on some kernels; on 6.x a read just
//! waits) and fails its writes (EIO): each is counted, and the relay keeps forwarding for the
//! other hosts. What the faults dropped is counted per host and printed at the end.

use anyhow::{Context, Result, bail};
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
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
    /// Faults to apply, read again on every SIGUSR1: one a line, `partition ADDRESS` (every
    /// packet from or to the host dropped) or `link-down ADDRESS` (the same, and the host's link
    /// loses its carrier).
    #[arg(long)]
    pub control: Option<PathBuf>,
    /// How `link-down` takes a host's link: `carrier` (its TUN loses carrier, as a veth whose
    /// peer went down) or `admin` (its `eth0` is set down in its namespace).
    #[arg(long, value_enum, default_value_t = LinkDown::Carrier)]
    pub link_down: LinkDown,
}

/// How a `link-down` fault takes a host's link.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkDown {
    /// TUNSETCARRIER off: `eth0` up with NO-CARRIER, what it sends vanishes (a pulled cable).
    Carrier,
    /// `eth0` administratively down in the host's namespace: its route goes, sends fail locally.
    Admin,
}

/// A fault of one host, as kept in `Port::fault` (a later, stronger fault replaces a weaker one).
const NO_FAULT: u8 = 0;
const PARTITION: u8 = 1;
const LINK_DOWN: u8 = 2;
// `apply_faults` keeps the stronger fault with fetch_max.
const _: () = assert!(NO_FAULT < PARTITION && PARTITION < LINK_DOWN);

/// Parses one line of the control file: `partition ADDRESS` or `link-down ADDRESS`.
fn parse_fault(line: &str) -> std::result::Result<(u8, Ipv4Addr), String> {
    let mut words = line.split_whitespace();
    let kind = match words.next() {
        Some("partition") => PARTITION,
        Some("link-down") => LINK_DOWN,
        _ => {
            return Err(format!(
                "{line:?} is not `partition ADDRESS` or `link-down ADDRESS`"
            ));
        }
    };
    let addr = words
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("{line:?}: no IPv4 address after the kind"))?;
    if words.next().is_some() {
        return Err(format!("{line:?}: more than a kind and an address"));
    }
    Ok((kind, addr))
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
    /// Failed reads of a TUN (a downed device), each followed by a short pause.
    read_errors: AtomicU64,
    /// Packets from or to a faulted host, dropped (all hosts together).
    fault_drops: AtomicU64,
}

/// The packets on their way to one host, in the order they leave.
#[derive(Default)]
struct Line {
    packets: VecDeque<(Instant, Vec<u8>)>,
    /// When the last packet queued here has been received in full at the rate.
    free_at: Option<Instant>,
}

/// One host: its TUN, its fault and, with a delay or a rate, the timer queue of what it receives.
struct Port {
    tun: File,
    line: Mutex<Line>,
    wake: Condvar,
    /// NO_FAULT, PARTITION or LINK_DOWN.
    fault: AtomicU8,
    /// Packets from or to this host dropped because of its fault.
    fault_drops: AtomicU64,
}

impl Port {
    fn new(tun: File) -> Port {
        Port {
            tun,
            line: Mutex::new(Line::default()),
            wake: Condvar::new(),
            fault: AtomicU8::new(NO_FAULT),
            fault_drops: AtomicU64::new(0),
        }
    }

    /// The queue, also after a thread panicked while holding it (the packets in it stay valid).
    fn lock_line(&self) -> MutexGuard<'_, Line> {
        self.line.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops (and counts) a packet from or to this host if it is cut off; says whether it did.
    fn cut_off(&self, counters: &Counters) -> bool {
        if self.fault.load(Relaxed) == NO_FAULT {
            return false;
        }
        self.fault_drops.fetch_add(1, Relaxed);
        counters.fault_drops.fetch_add(1, Relaxed);
        true
    }
}

/// The relay's shared state: every host's port, who owns which address, the counters, and how
/// packets are treated on their way.
struct Switch {
    ports: Vec<Arc<Port>>,
    by_addr: HashMap<[u8; 4], usize>,
    counters: Counters,
    delay: Duration,
    /// Whether packets go through the delivery threads' timer queues (a delay or a rate).
    queued: bool,
    loss_below: u64,
    rate: u64,
    limit: u64,
}

impl Switch {
    /// The reading thread of host `i`: forwards every packet its TUN gives to the host that owns
    /// the destination address, for as long as the relay runs.
    fn forward_from(&self, i: usize, mut rng: SplitMix64) {
        let mut buf = vec![0u8; 65536 + 4];
        let src = &self.ports[i].tun;
        let mut said = false;
        loop {
            let n = match read_packet(src, &mut buf) {
                Ok(n) => n,
                Err(e) => {
                    // A downed TUN (EIO, EBADFD): count it, say it once, wait a little
                    // (it fails again at once while down) and keep the other hosts going.
                    self.counters.read_errors.fetch_add(1, Relaxed);
                    if !said {
                        eprintln!(
                            "netsim-relay: reading host {i}'s TUN: {e} (counted; \
                             retrying every 10 ms)"
                        );
                        said = true;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            if self.ports[i].cut_off(&self.counters) {
                continue;
            }
            let packet = &buf[..n];
            let dst = (n >= 20 && packet[0] >> 4 == 4)
                .then(|| [packet[16], packet[17], packet[18], packet[19]])
                .and_then(|a| self.by_addr.get(&a).copied());
            let Some(dst) = dst else {
                self.counters.unroutable.fetch_add(1, Relaxed);
                continue;
            };
            let port = &self.ports[dst];
            if port.cut_off(&self.counters) {
                continue;
            }
            if self.loss_below > 0 && rng.next() < self.loss_below {
                self.counters.lost.fetch_add(1, Relaxed);
                continue;
            }
            if !self.queued {
                send(port, packet, &self.counters);
                continue;
            }
            let now = Instant::now();
            let mut line = port.lock_line();
            let mut due = now;
            if self.rate > 0 {
                let start = line.free_at.map_or(now, |f| f.max(now));
                if (start - now).as_secs_f64() * self.rate as f64 / 8.0 > self.limit as f64 {
                    self.counters.queue_full.fetch_add(1, Relaxed);
                    continue;
                }
                due = start + Duration::from_secs_f64(n as f64 * 8.0 / self.rate as f64);
                line.free_at = Some(due);
            }
            let was_empty = line.packets.is_empty();
            line.packets.push_back((due + self.delay, packet.to_vec()));
            drop(line);
            if was_empty {
                port.wake.notify_one();
            }
        }
    }
}

/// Runs the relay until SIGTERM or SIGINT (or the parent's death).
pub fn run(args: Args) -> Result<()> {
    if !(0.0..=100.0).contains(&args.loss_pct) {
        bail!("--loss-pct must be within 0..100, not {}", args.loss_pct);
    }
    // Block the stop signals and SIGUSR1 (faults) in every thread; the main thread takes them
    // with sigwait.
    // SAFETY: plain signal-set calls on a local set; pthread_sigmask affects this thread and the
    // threads it starts later.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGUSR1);
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
        ports.push(Arc::new(Port::new(tun)));
    }
    let switch = Arc::new(Switch {
        ports,
        by_addr,
        counters: Counters::default(),
        delay: Duration::from_micros(args.delay_us),
        queued: args.delay_us > 0 || args.rate_bps > 0,
        // A packet is dropped when the generator's next u64 is below this.
        loss_below: (args.loss_pct / 100.0 * u64::MAX as f64) as u64,
        rate: args.rate_bps,
        limit: args.queue_bytes,
    });
    let started = Instant::now();
    for i in 0..switch.ports.len() {
        if switch.queued {
            let switch = switch.clone();
            std::thread::Builder::new()
                .name(format!("relay-out-{i}"))
                .spawn(move || deliver(&switch.ports[i], &switch.counters))
                .context("start a delivery thread")?;
        }
        let switch = switch.clone();
        let rng = SplitMix64(args.seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        std::thread::Builder::new()
            .name(format!("relay-in-{i}"))
            .spawn(move || switch.forward_from(i, rng))
            .context("start a reading thread")?;
    }
    println!("ready");
    std::io::stdout().flush().ok();
    // The faults applied so far: (kind, host, seconds after the start).
    let mut faults: Vec<(u8, usize, f64)> = Vec::new();
    loop {
        let mut signal = 0;
        // SAFETY: sigwait on the set blocked above, with a valid out pointer.
        let rc = unsafe { libc::sigwait(&set, &mut signal) };
        if rc != 0 || signal != libc::SIGUSR1 {
            break;
        }
        let Some(control) = &args.control else {
            eprintln!("netsim-relay: SIGUSR1 without --control: ignored");
            continue;
        };
        apply_faults(control, &args, &switch, started, &mut faults);
    }
    let c = &switch.counters;
    let packets = c.packets.load(Relaxed);
    let lost = c.lost.load(Relaxed);
    let offered = packets + lost + c.queue_full.load(Relaxed);
    eprintln!(
        "netsim-relay: {} packets ({:.1} MB) forwarded in {:.1} s; dropped {lost} at random \
         ({:.3} % of {offered}, asked {} %), {} on full queues, {} unroutable, {} by faults; \
         {} write errors, {} read errors; CPU {:.2} s",
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
        c.fault_drops.load(Relaxed),
        c.write_errors.load(Relaxed),
        c.read_errors.load(Relaxed),
        cpu_seconds(),
    );
    for &(kind, i, at) in &faults {
        eprintln!(
            "netsim-relay: fault {} of {} from {at:.2} s: {} packets from or to it dropped",
            if kind == LINK_DOWN {
                "link-down"
            } else {
                "partition"
            },
            args.hosts[i].1,
            switch.ports[i].fault_drops.load(Relaxed),
        );
    }
    std::process::exit(0);
}

/// Applies the faults of the control file that are not in force yet (the file is read whole each
/// time: signals sent close together may arrive as one). A line that does not parse, or names no
/// host, is reported and skipped.
fn apply_faults(
    control: &std::path::Path,
    args: &Args,
    switch: &Switch,
    started: Instant,
    applied: &mut Vec<(u8, usize, f64)>,
) {
    let text = match std::fs::read_to_string(control) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("netsim-relay: control file {}: {e}", control.display());
            return;
        }
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (kind, addr) = match parse_fault(line) {
            Ok(fault) => fault,
            Err(e) => {
                eprintln!("netsim-relay: control file: {e}: skipped");
                continue;
            }
        };
        let Some(&i) = switch.by_addr.get(&addr.octets()) else {
            eprintln!("netsim-relay: control file: {addr} is none of the hosts: skipped");
            continue;
        };
        let port = &switch.ports[i];
        // From here every packet from or to the host is dropped (partition); link-down also
        // takes its link.
        if port.fault.fetch_max(kind, Relaxed) >= kind {
            continue;
        }
        applied.push((kind, i, started.elapsed().as_secs_f64()));
        if kind == LINK_DOWN {
            let (ns, _) = &args.hosts[i];
            let how = match args.link_down {
                LinkDown::Carrier => set_carrier(&port.tun, false)
                    .map(|()| "carrier off".to_string())
                    .or_else(|e| {
                        set_down_in(ns, &args.dev).map(|()| {
                            format!("TUNSETCARRIER failed ({e}): {} set down instead", args.dev)
                        })
                    }),
                LinkDown::Admin => {
                    set_down_in(ns, &args.dev).map(|()| format!("{} set down", args.dev))
                }
            };
            match how {
                Ok(how) => eprintln!("netsim-relay: link-down of {addr} ({ns}): {how}"),
                Err(e) => eprintln!(
                    "netsim-relay: link-down of {addr} ({ns}): {e:#}; its packets are dropped \
                     but its link stays up"
                ),
            }
        }
    }
}

/// Turns the carrier of the TUN behind `tun` on or off (TUNSETCARRIER, Linux 5.0 and later).
fn set_carrier(tun: &File, on: bool) -> std::io::Result<()> {
    let on = libc::c_int::from(on);
    // SAFETY: TUNSETCARRIER reads one int through the pointer, which outlives the call.
    if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETCARRIER, &on) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sets device `dev` of network namespace `ns` administratively down (`ip link set DEV down`):
/// a socket made inside the namespace carries the SIOCSIFFLAGS there.
fn set_down_in(ns: &str, dev: &str) -> Result<()> {
    if dev.is_empty() || dev.len() >= libc::IFNAMSIZ {
        bail!("{dev:?} is not a device name");
    }
    let home = File::open("/proc/thread-self/ns/net").context("this thread's namespace")?;
    let there = File::open(format!("/var/run/netns/{ns}"))
        .with_context(|| format!("/var/run/netns/{ns}"))?;
    setns(&there).with_context(|| format!("enter namespace {ns}"))?;
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    let made = std::io::Error::last_os_error();
    setns(&home).context("return to the relay's namespace")?;
    if fd < 0 {
        return Err(made).context("a socket in the host's namespace");
    }
    // SAFETY: fd was just made and is owned by nothing else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(dev.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS and SIOCSIFFLAGS read and write the ifreq we pass, which outlives
    // each call; ifru_flags is the member they use.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) != 0 {
            return Err(std::io::Error::last_os_error()).context("SIOCGIFFLAGS");
        }
        ifr.ifr_ifru.ifru_flags &= !(libc::IFF_UP as libc::c_short);
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) != 0 {
            return Err(std::io::Error::last_os_error()).context("SIOCSIFFLAGS");
        }
    }
    Ok(())
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

/// Writes one packet to a host's TUN (a packet the host cannot take is lost, as on a wire; one
/// for a host cut off since it was queued is dropped here).
fn send(port: &Port, packet: &[u8], counters: &Counters) {
    if port.cut_off(counters) {
        return;
    }
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
    fn faults_parse_as_kind_and_address() {
        assert_eq!(
            parse_fault("partition 10.77.0.10").unwrap(),
            (PARTITION, Ipv4Addr::new(10, 77, 0, 10))
        );
        assert_eq!(
            parse_fault("  link-down   10.77.0.11 ").unwrap(),
            (LINK_DOWN, Ipv4Addr::new(10, 77, 0, 11))
        );
        assert!(parse_fault("flap 10.77.0.10").is_err());
        assert!(parse_fault("partition").is_err());
        assert!(parse_fault("partition 10.77.0").is_err());
        assert!(parse_fault("partition 10.77.0.10 now").is_err());
    }

    /// A port whose "TUN" is one end of a datagram socket pair (one packet a datagram, as a
    /// TUN reads and writes them); the other end, returned, is the host.
    fn fake_port() -> (Arc<Port>, std::os::unix::net::UnixDatagram) {
        let (tun, host) = std::os::unix::net::UnixDatagram::pair().unwrap();
        host.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (Arc::new(Port::new(File::from(OwnedFd::from(tun)))), host)
    }

    /// A bare IPv4 header from 10.77.0.FROM to 10.77.0.TO and a payload.
    fn packet(from: u8, to: u8) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&28u16.to_be_bytes());
        p[12..16].copy_from_slice(&[10, 77, 0, from]);
        p[16..20].copy_from_slice(&[10, 77, 0, to]);
        p[20..].copy_from_slice(b"payload!");
        p
    }

    /// Hosts 10.77.0.10 and .11 on socket pairs and .12, whose "TUN" fails every read (a
    /// write-only descriptor), each with its reading thread (and delivery thread with a delay).
    fn switch(delay: Duration) -> (Arc<Switch>, [std::os::unix::net::UnixDatagram; 2]) {
        let (p0, h0) = fake_port();
        let (p1, h1) = fake_port();
        let broken = File::options().write(true).open("/dev/null").unwrap();
        let switch = Arc::new(Switch {
            ports: vec![p0, p1, Arc::new(Port::new(broken))],
            by_addr: (0..3).map(|i| ([10, 77, 0, 10 + i as u8], i)).collect(),
            counters: Counters::default(),
            delay,
            queued: !delay.is_zero(),
            loss_below: 0,
            rate: 0,
            limit: 0,
        });
        for i in 0..3 {
            let s = switch.clone();
            std::thread::spawn(move || s.forward_from(i, SplitMix64(1)));
            if switch.queued {
                let s = switch.clone();
                std::thread::spawn(move || deliver(&s.ports[i], &s.counters));
            }
        }
        (switch, [h0, h1])
    }

    /// Waits (at most 5 s) until `done` holds.
    fn eventually(done: impl Fn() -> bool) -> bool {
        let until = Instant::now() + Duration::from_secs(5);
        while !done() {
            if Instant::now() > until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    #[test]
    fn a_failing_tun_is_counted_and_the_others_keep_forwarding() {
        let (switch, [h0, h1]) = switch(Duration::ZERO);
        assert!(eventually(|| switch.counters.read_errors.load(Relaxed) >= 2));
        let mut buf = [0u8; 100];
        h0.send(&packet(10, 11)).unwrap();
        let n = h1.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &packet(10, 11)[..]);
        h1.send(&packet(11, 10)).unwrap();
        let n = h0.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &packet(11, 10)[..]);
        assert!(eventually(|| switch.counters.packets.load(Relaxed) == 2));
    }

    #[test]
    fn a_partitioned_host_neither_sends_nor_receives_and_the_drops_are_counted() {
        let (switch, [h0, h1]) = switch(Duration::ZERO);
        switch.ports[1].fault.store(PARTITION, Relaxed);
        h0.send(&packet(10, 11)).unwrap();
        h1.send(&packet(11, 10)).unwrap();
        assert!(eventually(|| switch.ports[1].fault_drops.load(Relaxed) == 2));
        assert_eq!(switch.counters.fault_drops.load(Relaxed), 2);
        assert_eq!(switch.ports[0].fault_drops.load(Relaxed), 0);
        h0.set_nonblocking(true).unwrap();
        h1.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 100];
        assert!(h0.recv(&mut buf).is_err() && h1.recv(&mut buf).is_err());
        assert_eq!(switch.counters.packets.load(Relaxed), 0);
    }

    #[test]
    fn a_packet_already_queued_for_a_host_that_goes_down_is_dropped() {
        // Held for 300 ms on its way to .11, which loses its link meanwhile.
        let (switch, [h0, h1]) = switch(Duration::from_millis(300));
        h0.send(&packet(10, 11)).unwrap();
        assert!(eventually(|| switch.ports[1].lock_line().packets.len() == 1));
        switch.ports[1].fault.store(LINK_DOWN, Relaxed);
        assert!(eventually(|| switch.ports[1]
            .lock_line()
            .packets
            .is_empty()));
        assert!(eventually(|| switch.counters.fault_drops.load(Relaxed) == 1));
        h1.set_nonblocking(true).unwrap();
        assert!(h1.recv(&mut [0u8; 100]).is_err());
        assert_eq!(switch.counters.packets.load(Relaxed), 0);
    }

    #[test]
    fn the_loss_threshold_drops_about_the_asked_share() {
        let mut rng = SplitMix64(7);
        let below = (0.01 * u64::MAX as f64) as u64;
        let drops = (0..1_000_000).filter(|_| rng.next() < below).count();
        assert!((9_000..11_000).contains(&drops), "{drops}");
    }
}
