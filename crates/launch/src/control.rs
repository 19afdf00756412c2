//! Start-up over the control channel. The first host's launcher listens; every other launcher
//! connects (retrying until the deadline) from its own `--ips` address, and the two prove to
//! each other that they hold the control key before either says anything else (protocol 2,
//! nonce first, as the collective's handshake: the first host sends a bare 32-byte nonce; the
//! launcher answers its own nonce and `HMAC-SHA256(key, "connector" | node rank | both nonces)`;
//! the first host checks it and answers its own proof; only then the launcher says `Hello`). A
//! connection from an address that is not another host's, or without the proof, is logged and
//! closed without a word: a stranger learns 32 random bytes, and a launcher that reached a
//! stranger's listener has sent a nonce and a proof bound to the stranger's nonce, never its
//! hello. The first host greets up to [`MAX_GREETINGS`] connections side by side
//! (each at most [`GREETING_LIMIT`], none past the deadline) and waits for all the launchers
//! until its deadline or a signal, naming the hosts that never came, then compares their same-job fingerprints and preflight results and
//! answers `Go` (with the job token) or `Reject`.

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use socket2::{Domain, Protocol, Socket, Type};

use super::error::LaunchError;
use super::events::now_ms;
use super::same_job::{Fingerprint, differences};
use super::token::{CONTROL_NONCE_LEN, ProofSide, control_proof, random_bytes, same_proof};
use super::wire::MAX_LINE;
pub use super::wire::{Hello, Msg, Receiver, Sender};

/// A launcher that joined the first host.
pub struct Member {
    /// Its hello.
    pub hello: Hello,
    /// Its clock minus the first host's, in ms (one-way delay included).
    pub skew_ms: i64,
    /// Sending half.
    pub sender: Sender,
    /// Receiving half.
    pub receiver: Receiver,
}

/// How long the first host gives one connection to prove itself and say hello.
pub const GREETING_LIMIT: Duration = Duration::from_secs(5);

/// Most connections the first host greets at once; more wait in the listen backlog until one
/// of them ends (at the latest after [`GREETING_LIMIT`]).
pub const MAX_GREETINGS: usize = 16;

/// First host: accepts one launcher per other `--ips` entry until `deadline`, each after the
/// control handshake (source address, then the challenge-response with `key`, then the hello),
/// greeting up to [`MAX_GREETINGS`] connections side by side so that a slow stranger cannot hold
/// up a real launcher. On timeout, the error names the hosts that never came; the members that
/// did come are returned with it so that they can be told. A connection that fails the
/// handshake is logged and closed without a word, and changes nothing about the job.
pub fn gather(
    listener: &TcpListener,
    ips: &[IpAddr],
    key: &str,
    deadline: Instant,
    start_timeout: Duration,
    interrupted: &dyn Fn() -> bool,
) -> Result<Vec<Member>, (String, Vec<Member>)> {
    if let Err(err) = listener.set_nonblocking(true) {
        return Err((format!("control channel: {err}"), Vec::new()));
    }
    let gathering_over = AtomicBool::new(false);
    let (greeted_tx, greeted) = mpsc::channel::<(SocketAddr, Result<Member, String>)>();
    std::thread::scope(|scope| {
        let mut members: Vec<Member> = Vec::new();
        let mut in_flight = 0usize;
        let outcome = loop {
            while let Ok((peer, result)) = greeted.try_recv() {
                in_flight -= 1;
                match result {
                    Ok(member)
                        if members
                            .iter()
                            .any(|m| m.hello.node_rank == member.hello.node_rank) =>
                    {
                        // It proved the job secret: it may hear why.
                        let message = format!(
                            "two launchers say they are {} (node {})",
                            member.hello.host, member.hello.node_rank
                        );
                        let _ = member.sender.send(&Msg::Reject {
                            message: message.clone(),
                        });
                        warn!("refused a control connection from {peer}: {message}");
                    }
                    Ok(member) => {
                        debug!(
                            "{} (node {}) joined from {peer}, clock skew {} ms",
                            member.hello.host, member.hello.node_rank, member.skew_ms
                        );
                        members.push(member)
                    }
                    Err(why) => warn!("refused a control connection from {peer}: {why}"),
                }
            }
            if members.len() + 1 >= ips.len() {
                break Ok(());
            }
            if interrupted() {
                break Err("interrupted while waiting for the other hosts".to_string());
            }
            if Instant::now() >= deadline {
                let missing: Vec<String> = (1..ips.len())
                    .filter(|n| !members.iter().any(|m| m.hello.node_rank == *n))
                    .map(|n| format!("{} (node {n})", ips[n]))
                    .collect();
                break Err(format!(
                    "timed out after {:.0} s waiting for the launchers of {}: start `ringdet launch` with the \
                     same flags there, and check that they can reach {} (firewall?)",
                    start_timeout.as_secs_f64(),
                    missing.join(", "),
                    listener
                        .local_addr()
                        .map(|a| a.to_string())
                        .unwrap_or_default(),
                ));
            }
            if in_flight >= MAX_GREETINGS {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            match listener.accept() {
                Ok((stream, peer)) => {
                    let greeting = Greeting {
                        ips,
                        key,
                        deadline: deadline.min(Instant::now() + GREETING_LIMIT),
                        gathering_over: &gathering_over,
                    };
                    let report = greeted_tx.clone();
                    let spawned = std::thread::Builder::new()
                        .name("control greeting".into())
                        .spawn_scoped(scope, move || {
                            let _ = report.send((peer, greeting.greet(stream, peer)));
                        });
                    match spawned {
                        Ok(_) => in_flight += 1,
                        Err(err) => warn!("cannot greet {peer} (no thread: {err}); closed"),
                    }
                }
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(err) => warn!("control channel accept failed: {err}"),
            }
        };
        // Greetings still running stop within 200 ms; their connections are closed.
        gathering_over.store(true, Ordering::Relaxed);
        members.sort_by_key(|m| m.hello.node_rank);
        match outcome {
            Ok(()) => Ok(members),
            Err(why) => Err((why, members)),
        }
    })
}

/// One connection's handshake on the first host, and what it is checked against.
struct Greeting<'a> {
    ips: &'a [IpAddr],
    key: &'a str,
    deadline: Instant,
    gathering_over: &'a AtomicBool,
}

impl Greeting<'_> {
    /// Source address, the challenge-response ([`prove_to_member`]), then the hello and who it
    /// claims to be. Nothing about the job is sent before the proof; a failure before it drops
    /// the socket without a word.
    fn greet(&self, stream: TcpStream, peer: SocketAddr) -> Result<Member, String> {
        let peer_ip = peer.ip().to_canonical();
        // Its node rank follows from its address: nothing needs to be read to know it.
        let Some(node_rank) = self.ips[1..].iter().position(|ip| *ip == peer_ip) else {
            return Err(format!(
                "{peer_ip} is none of the other hosts in --ips (closed)"
            ));
        };
        let node_rank = node_rank + 1;
        stream.set_nonblocking(false).map_err(|e| e.to_string())?;
        let sender = Sender::new(&stream).map_err(|e| e.to_string())?;
        let mut receiver = Receiver::new(stream);
        let keep_waiting = || !self.gathering_over.load(Ordering::Relaxed);
        prove_to_member(
            &sender,
            &mut receiver,
            node_rank,
            self.key,
            self.deadline,
            &keep_waiting,
        )
        .map_err(|why| format!("{peer_ip} (node {node_rank}): {why} (closed)"))?;
        receiver.set_limit(MAX_LINE);
        let hello = match receiver.recv(self.deadline, &keep_waiting) {
            Ok(Some(Msg::Hello(hello))) => hello,
            Ok(other) => return Err(format!("expected a hello, got {}", kind(&other))),
            Err(err) => return Err(err.to_string()),
        };
        let skew_ms = hello.time_ms as i64 - now_ms() as i64;
        if hello.node_rank != node_rank || hello.host != peer_ip.to_string() {
            let message = format!(
                "a launcher at {peer_ip} (node {node_rank}) says it is {} (node {})",
                hello.host, hello.node_rank
            );
            // The peer proved the job secret: it may hear why.
            let _ = sender.send(&Msg::Reject {
                message: message.clone(),
            });
            return Err(message);
        }
        Ok(Member {
            hello,
            skew_ms,
            sender,
            receiver,
        })
    }
}

/// The first host's half of the control handshake on a connection from node `node_rank`
/// (known from its address): sends a bare nonce, reads the launcher's nonce and proof, checks
/// it, and answers its own proof. Nothing else is sent; before the proof is checked at most
/// [`CONTROL_NONCE_LEN`] × 2 bytes are read. An older launcher (protocol 1, whose JSON `Knock`
/// came first) is named as such.
pub fn prove_to_member(
    sender: &Sender,
    receiver: &mut Receiver,
    node_rank: usize,
    key: &str,
    deadline: Instant,
    keep_waiting: &dyn Fn() -> bool,
) -> Result<(), String> {
    let nonce_a = random_bytes::<CONTROL_NONCE_LEN>().map_err(|e| format!("no nonce: {e}"))?;
    sender.send_raw(&nonce_a).map_err(|e| e.to_string())?;
    let mut answer = [0u8; 2 * CONTROL_NONCE_LEN];
    receiver
        .recv_raw(&mut answer, deadline, keep_waiting)
        .map_err(|e| format!("no proof of the job secret: {e}"))?;
    if answer.starts_with(br#"{"msg":"Knock""#) {
        return Err(
            "it speaks the control protocol of an older ringdet launch (whose \
                    launchers speak first): run the same ringdet on every host"
                .into(),
        );
    }
    let (nonce_c, proof_c) = answer.split_at(CONTROL_NONCE_LEN);
    let expected = control_proof(key, ProofSide::Connector, node_rank, &nonce_a, nonce_c);
    if !same_proof(proof_c, &expected) {
        return Err("failed the job-secret proof: a stranger, or a different \
                    RINGDET_JOB_SECRET / --job_secret_file there"
            .into());
    }
    let proof_a = control_proof(key, ProofSide::Acceptor, node_rank, &nonce_a, nonce_c);
    sender.send_raw(&proof_a).map_err(|e| e.to_string())
}

/// Another host's half of the control handshake, as node `node_rank`: reads the first host's
/// nonce, answers its own nonce and proof, and checks the first host's proof before anything
/// else is said. `control` names the first host in the messages.
pub fn prove_to_first_host(
    sender: &Sender,
    receiver: &mut Receiver,
    node_rank: usize,
    key: &str,
    deadline: Instant,
    keep_waiting: &dyn Fn() -> bool,
    control: SocketAddr,
) -> Result<(), String> {
    let eof = |e: &std::io::Error| e.kind() == std::io::ErrorKind::UnexpectedEof;
    let mut nonce_a = [0u8; CONTROL_NONCE_LEN];
    if let Err(e) = receiver.recv_raw(&mut nonce_a, deadline, keep_waiting) {
        return Err(if eof(&e) {
            format!(
                "the first host's launcher at {control} closed the connection before its \
                 challenge: it admits only the hosts of its --ips, each from its own address \
                 (see its log), or it is an older ringdet launch, which waits for this host to \
                 speak first"
            )
        } else {
            format!("no challenge from {control}: {e}")
        });
    }
    let nonce_c = random_bytes::<CONTROL_NONCE_LEN>()
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    let mut answer = [0u8; 2 * CONTROL_NONCE_LEN];
    answer[..CONTROL_NONCE_LEN].copy_from_slice(&nonce_c);
    answer[CONTROL_NONCE_LEN..].copy_from_slice(&control_proof(
        key,
        ProofSide::Connector,
        node_rank,
        &nonce_a,
        &nonce_c,
    ));
    sender
        .send_raw(&answer)
        .map_err(|e| format!("answering the challenge of {control}: {e}"))?;
    let mut proof_a = [0u8; CONTROL_NONCE_LEN];
    if let Err(e) = receiver.recv_raw(&mut proof_a, deadline, keep_waiting) {
        return Err(if eof(&e) {
            format!(
                "the first host's launcher at {control} closed the connection after our proof \
                 of the job secret: is RINGDET_JOB_SECRET (or --job_secret_file) the same on \
                 every host, and is this host's address in its --ips? (see its log)"
            )
        } else {
            format!("no proof from {control}: {e}")
        });
    }
    let expected = control_proof(key, ProofSide::Acceptor, node_rank, &nonce_a, &nonce_c);
    if !same_proof(&proof_a, &expected) {
        return Err(format!(
            "the launcher at {control} did not prove the job secret: is RINGDET_JOB_SECRET \
             (or --job_secret_file) the same on every host?"
        ));
    }
    Ok(())
}

/// A message's kind, for logs (never its contents, which a stranger chose).
fn kind(msg: &Option<Msg>) -> &'static str {
    match msg {
        None => "end of stream",
        Some(Msg::Hello(_)) => "Hello",
        Some(Msg::Go { .. }) => "Go",
        Some(Msg::Reject { .. }) => "Reject",
        Some(Msg::Failed { .. }) => "Failed",
        Some(Msg::Done) => "Done",
        Some(Msg::Abort { .. }) => "Abort",
        Some(Msg::Stopped) => "Stopped",
        Some(Msg::Final { .. }) => "Final",
        Some(Msg::Progress { .. }) => "Progress",
        Some(Msg::Ping) => "Ping",
    }
}

/// First host: why the job cannot start (fingerprint differences, preflight errors of any
/// host), as one message, or None.
pub fn verdict(
    first: &Fingerprint,
    first_preflight: &[String],
    first_host: &str,
    members: &[Member],
) -> Option<String> {
    let mut problems = Vec::new();
    for line in first_preflight {
        problems.push(format!("{first_host} (node 0): {line}"));
    }
    for member in members {
        let at = format!("{} (node {})", member.hello.host, member.hello.node_rank);
        for line in &member.hello.preflight {
            problems.push(format!("{at}: {line}"));
        }
        for line in differences(first, &member.hello.fingerprint) {
            problems.push(format!("{at} differs from the first host: {line}"));
        }
    }
    (!problems.is_empty()).then(|| format!("the job cannot start:\n  {}", problems.join("\n  ")))
}

/// Other hosts: connects to the first host from `source` (this host's `--ips` address, which
/// the first host checks), retrying until `deadline`; proves the control `key` and checks the
/// first host's proof, says hello and waits for `Go` or `Reject`. Returns the connection and
/// the answer.
pub fn join(
    control: SocketAddr,
    source: IpAddr,
    mut hello: Hello,
    key: &str,
    deadline: Instant,
    start_timeout: Duration,
    interrupted: &dyn Fn() -> bool,
) -> Result<(Sender, Receiver, Msg), LaunchError> {
    let fail = |message: String| Err(LaunchError::Control(message));
    let mut last_error = String::from("no attempt");
    let stream = loop {
        if interrupted() {
            return fail(format!(
                "interrupted while connecting to the first host's launcher at {control}"
            ));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return fail(format!(
                "could not reach the first host's launcher at {control} within {:.0} s ({last_error}): \
                 is `ringdet launch` running there with the same --ips and --start_port?",
                start_timeout.as_secs_f64()
            ));
        }
        match connect_from(source, control, left.min(Duration::from_secs(1))) {
            Ok(stream) => break stream,
            Err(err) => {
                debug!("connecting to the first host's launcher at {control}: {err}");
                last_error = err.to_string();
                std::thread::sleep(Duration::from_millis(200).min(left));
            }
        }
    };
    let sender = Sender::new(&stream)
        .map_err(LaunchError::io(format!("control connection to {control}")))?;
    let mut receiver = Receiver::new(stream);
    // The first host answers by its own deadline, which is at most start_timeout from now.
    let answer_by = Instant::now() + start_timeout + GREETING_LIMIT;
    let keep_waiting = || !interrupted();
    let closed = || {
        format!(
            "the first host's launcher at {control} closed the connection during the handshake: \
             it admits only the hosts of its --ips, each from its own address, holding the same \
             job secret (see its log)"
        )
    };
    if let Err(why) = prove_to_first_host(
        &sender,
        &mut receiver,
        hello.node_rank,
        key,
        answer_by,
        &keep_waiting,
        control,
    ) {
        return fail(if interrupted() {
            format!("interrupted while waiting for the first host ({why})")
        } else {
            why
        });
    }
    // The first host measures the clock skew from this: stamp it now, not before connecting.
    hello.time_ms = now_ms();
    sender
        .send(&Msg::Hello(hello))
        .map_err(LaunchError::io(format!("saying hello to {control}")))?;
    debug!("connected to the first host's launcher at {control}; waiting for Go");
    let answer = match receiver.recv(answer_by, &keep_waiting) {
        Ok(Some(msg @ (Msg::Go { .. } | Msg::Reject { .. }))) => msg,
        Ok(Some(other)) => {
            return fail(format!(
                "the first host's launcher answered {} instead of Go",
                kind(&Some(other))
            ));
        }
        Ok(None) => return fail(closed()),
        Err(err) if interrupted() => {
            return fail(format!(
                "interrupted while waiting for the first host ({err})"
            ));
        }
        Err(err) => {
            return fail(format!(
                "no start signal from the first host's launcher at {control}: {err}"
            ));
        }
    };
    Ok((sender, receiver, answer))
}

/// Connects to `to` from the address `from` (so that the first host sees this host's `--ips`
/// address), falling back to the system's choice when `from` is not an address of this machine.
fn connect_from(from: IpAddr, to: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))?;
    if let Err(err) = socket.bind(&SocketAddr::new(from, 0).into()) {
        debug!("cannot connect from {from} ({err}); letting the system choose the address");
        return TcpStream::connect_timeout(&to, timeout);
    }
    socket.connect_timeout(&to.into(), timeout)?;
    Ok(socket.into())
}
