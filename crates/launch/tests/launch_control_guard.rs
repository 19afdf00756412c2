//! The first host's control port under attack while it waits for the other hosts: a flood
//! without a newline keeps its memory flat, a 1-byte trickle neither stretches `--start_timeout`
//! nor delays Ctrl-C, a forged hello from an address that is not the host it claims gets a
//! closed socket (no byte of job information) and changes nothing about the job, and a stranger
//! from a job host's address that speaks the old protocol (hello first) hears 32 random bytes
//! and is logged as an older ringdet.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// One connection attempt to `to` from `from`.
fn try_connect_from(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let local: IpAddr = from.parse().unwrap();
    socket.bind(&SocketAddr::new(local, 0).into())?;
    socket.connect_timeout(&to.into(), Duration::from_secs(1))?;
    Ok(socket.into())
}

/// Connects to `to` from `from`, retrying for up to 10 s (the launcher may not listen yet).
fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        match try_connect_from(from, to) {
            Ok(stream) => return stream,
            Err(err) => {
                assert!(Instant::now() < until, "cannot connect to {to}: {err}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn control(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port - 1))
}

/// The launcher's resident memory in kB, from /proc.
fn vm_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Sends one byte every 100 ms from 127.0.0.2 (an address of the job) to the control port,
/// reconnecting when closed, until `stop` is set or 60 s pass.
fn trickle(port: u16, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let until = Instant::now() + Duration::from_secs(60);
    let mut stream: Option<TcpStream> = None;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < until {
        // Until the launcher listens (and after it has gone) attempts fail; keep trying.
        if stream.is_none() {
            stream = try_connect_from("127.0.0.2", control(port)).ok();
        }
        if let Some(conn) = &mut stream
            && conn.write_all(b"{").is_err()
        {
            stream = None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start_trickle(
    port: u16,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<()>,
) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    (stop, std::thread::spawn(move || trickle(port, flag)))
}

/// A first host of two waiting for the second (`--start_timeout` seconds) on `port`, in a
/// fresh directory `name`.
fn waiting_first_host(
    name: &str,
    port: u16,
    start_timeout: &str,
) -> (std::path::PathBuf, Launcher) {
    let dir = scratch(name);
    let extra = ["--nproc_per_node", "1", "--start_timeout", start_timeout];
    let first = start(&dir, TWO_HOSTS, "127.0.0.1", port, &extra, &["true"]);
    (dir, first)
}

/// The real second host joins `first` and the job runs to success on both; returns the first
/// host's stderr.
fn second_host_joins(dir: &std::path::Path, port: u16, first: &mut Launcher) -> String {
    let extra = ["--nproc_per_node", "1", "--start_timeout", "30"];
    let mut second = start(dir, TWO_HOSTS, "127.0.0.2", port, &extra, &["true"]);
    let (s0, s1) = (first.wait(30.0), second.wait(30.0));
    let err = first.stderr();
    assert_eq!(s0.code(), Some(0), "{err}");
    assert_eq!(s1.code(), Some(0), "{}", second.stderr());
    err
}

#[test]
fn a_flood_without_newline_keeps_the_launchers_memory_flat() {
    let port = 24700;
    let (dir, mut first) = waiting_first_host("control-flood", port, "60");
    let pid = first.child.id();
    let chunk = vec![b'a'; 1 << 20];
    let (mut sent, mut peak_kb) = (0usize, 0u64);
    let until = Instant::now() + Duration::from_secs(20);
    // 200 MB without a newline, from an address of the job, reconnecting when dropped.
    while sent < 200 << 20 && Instant::now() < until {
        let mut stream = connect_from("127.0.0.2", control(port));
        stream
            .set_write_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        while sent < 200 << 20 && Instant::now() < until {
            match stream.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
            peak_kb = peak_kb.max(vm_rss_kb(pid).unwrap_or(0));
        }
    }
    peak_kb = peak_kb.max(vm_rss_kb(pid).unwrap_or(0));
    assert!(
        peak_kb < 64 * 1024,
        "the launcher grew to {peak_kb} kB after {sent} bytes"
    );
    // The job is unaffected: the real second host joins and it runs.
    second_host_joins(&dir, port, &mut first);
}

#[test]
fn a_trickle_does_not_stretch_the_start_timeout() {
    let port = 24710;
    let started = Instant::now();
    let (_dir, mut first) = waiting_first_host("control-trickle-timeout", port, "4");
    let (stop, attacker) = start_trickle(port);
    let status = first.wait(30.0);
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    attacker.join().unwrap();
    let err = first.stderr();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("timed out after 4 s"), "{err}");
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} for a 4 s deadline"
    );
}

#[test]
fn ctrl_c_under_a_trickle_stops_the_launcher_at_once() {
    let port = 24720;
    let (_dir, mut first) = waiting_first_host("control-trickle-sigint", port, "60");
    let (stop, attacker) = start_trickle(port);
    std::thread::sleep(Duration::from_millis(1500));
    let sent_at = Instant::now();
    // SAFETY: kill(2) on this test's child.
    unsafe { libc::kill(first.child.id() as i32, libc::SIGINT) };
    let status = first.wait(30.0);
    let took = sent_at.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    attacker.join().unwrap();
    assert_eq!(status.code(), Some(130), "{}", first.stderr());
    assert!(took < Duration::from_secs(2), "SIGINT took {took:?}");
}

#[test]
fn a_forged_hello_from_a_wrong_address_gets_nothing_and_changes_nothing() {
    let port = 24730;
    let (dir, mut first) = waiting_first_host("control-forged-hello", port, "30");
    // A hello claiming to be 127.0.0.2 (node 1), sent from 127.0.0.1, with a differing job.
    let fingerprint = ringdet_launch::same_job::Fingerprint {
        version: "0.0.0-forged".into(),
        command: vec!["forged".into()],
        files: vec![],
        local_world_size: 1,
        ips: TWO_HOSTS.split(',').map(String::from).collect(),
        start_port: port,
        job_id: "default".into(),
        secret_proof: None,
    };
    let hello = ringdet_launch::wire::Msg::Hello(ringdet_launch::wire::Hello {
        node_rank: 1,
        host: "127.0.0.2".into(),
        time_ms: 0,
        fingerprint,
        preflight: vec![],
    });
    let mut stranger = connect_from("127.0.0.1", control(port));
    let mut forged = serde_json::to_string(&hello).unwrap();
    forged.push('\n');
    let _ = stranger.write_all(forged.as_bytes());
    stranger
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut heard = Vec::new();
    let until = Instant::now() + Duration::from_secs(6);
    let mut buf = [0u8; 4096];
    while Instant::now() < until {
        match stranger.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => heard.extend_from_slice(&buf[..n]),
        }
    }
    assert!(
        heard.is_empty(),
        "the stranger heard {:?}",
        String::from_utf8_lossy(&heard)
    );
    // The job is unaffected: the real second host joins and it runs.
    let err = second_host_joins(&dir, port, &mut first);
    assert!(
        err.contains("refused a control connection from 127.0.0.1"),
        "the stranger is logged: {err}"
    );
}

#[test]
fn a_host_with_another_secret_is_refused_by_the_handshake() {
    let dir = scratch("control-other-secret");
    let port = 24740;
    let extra = ["--nproc_per_node", "1", "--start_timeout", "3"];
    let mut first = start_with(
        &dir,
        TWO_HOSTS,
        "127.0.0.1",
        port,
        &extra,
        &["true"],
        &[("RINGDET_JOB_SECRET", "one")],
    );
    let mut second = start_with(
        &dir,
        TWO_HOSTS,
        "127.0.0.2",
        port,
        &extra,
        &["true"],
        &[("RINGDET_JOB_SECRET", "two")],
    );
    let (s0, s1) = (first.wait(30.0), second.wait(30.0));
    assert_eq!(s1.code(), Some(1));
    assert!(
        second
            .stderr()
            .contains("closed the connection after our proof of the job secret"),
        "{}",
        second.stderr()
    );
    assert_eq!(s0.code(), Some(1));
    assert!(
        first
            .stderr()
            .contains("waiting for the launchers of 127.0.0.2 (node 1)"),
        "the job does not start with it: {}",
        first.stderr()
    );
    assert!(first.worker_log(0).is_empty(), "no worker may start");
}

#[test]
fn silent_strangers_do_not_hold_up_the_real_host() {
    let port = 24750;
    let (dir, mut first) = waiting_first_host("control-silent-strangers", port, "10");
    // Four silent connections from a job address, each reopened when closed, for at most 30 s:
    // greeted one after another (5 s each) they would keep the real host out past 10 s.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let strangers = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(30);
        let mut open: Vec<TcpStream> = Vec::new();
        while !flag.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < until {
            // Keep a connection while it is open (the first host's nonce is read and ignored).
            open.retain(|s| {
                s.set_nonblocking(true).unwrap();
                match (&*s).read(&mut [0u8; 64]) {
                    Ok(n) => n > 0,
                    Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
                }
            });
            // Once the job has started the port is closed: attempts fail until told to stop.
            while open.len() < 4 {
                match try_connect_from("127.0.0.2", control(port)) {
                    Ok(stream) => open.push(stream),
                    Err(_) => break,
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    second_host_joins(&dir, port, &mut first);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    strangers.join().unwrap();
}

#[test]
fn a_launcher_of_the_old_protocol_hears_only_a_nonce_and_is_named_as_older() {
    let port = 24760;
    let (dir, mut first) = waiting_first_host("control-old-protocol", port, "30");
    // Protocol 1: the connecting launcher knocked first, in JSON, from its own address.
    let mut old = connect_from("127.0.0.2", control(port));
    let knock =
        "{\"msg\":\"Knock\",\"node_rank\":1,\"nonce\":\"00112233445566778899aabbccddeeff\"}\n";
    let _ = old.write_all(knock.as_bytes());
    old.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let mut heard = Vec::new();
    let mut buf = [0u8; 4096];
    while heard.len() < 4096 {
        match old.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => heard.extend_from_slice(&buf[..n]),
        }
    }
    assert_eq!(heard.len(), 32, "it heard {heard:?}");
    let err = second_host_joins(&dir, port, &mut first);
    assert!(
        err.contains("refused a control connection from 127.0.0.2")
            && err.contains("older ringdet launch"),
        "{err}"
    );
}
