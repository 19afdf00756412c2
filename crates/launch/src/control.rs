//! Start-up over the control channel. The first host's launcher listens; every other launcher
//! connects (retrying until the deadline) and says `Hello`. The first host waits for all of them
//! until its deadline, naming the hosts that never came, then compares their same-job
//! fingerprints and preflight results and answers `Go` (with the job token) or `Reject`.

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::error::LaunchError;
use super::events::now_ms;
use super::same_job::{Fingerprint, differences};
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

/// First host: accepts one launcher per other `--ips` entry until `deadline`.
/// On timeout, the error names the hosts that never came; the members that did come are returned
/// with it so that they can be told.
pub fn gather(
    listener: &TcpListener,
    ips: &[IpAddr],
    deadline: Instant,
    start_timeout: Duration,
    interrupted: &dyn Fn() -> bool,
) -> Result<Vec<Member>, (String, Vec<Member>)> {
    let mut members: Vec<Member> = Vec::new();
    if let Err(err) = listener.set_nonblocking(true) {
        return Err((format!("control channel: {err}"), members));
    }
    while members.len() + 1 < ips.len() {
        if interrupted() {
            return Err((
                "interrupted while waiting for the other hosts".into(),
                members,
            ));
        }
        if Instant::now() >= deadline {
            let missing: Vec<String> = (1..ips.len())
                .filter(|n| !members.iter().any(|m| m.hello.node_rank == *n))
                .map(|n| format!("{} (node {n})", ips[n]))
                .collect();
            let message = format!(
                "timed out after {:.0} s waiting for the launchers of {}: start `ringdet launch` with the \
                 same flags there, and check that they can reach {} (firewall?)",
                start_timeout.as_secs_f64(),
                missing.join(", "),
                listener
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
            );
            return Err((message, members));
        }
        match listener.accept() {
            Ok((stream, peer)) => match greet(stream, ips, &members) {
                Ok(member) => {
                    debug!(
                        "{} (node {}) joined from {peer}, clock skew {} ms",
                        member.hello.host, member.hello.node_rank, member.skew_ms
                    );
                    members.push(member)
                }
                Err(why) => warn!("refused a control connection from {peer}: {why}"),
            },
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(err) => warn!("control channel accept failed: {err}"),
        }
    }
    members.sort_by_key(|m| m.hello.node_rank);
    Ok(members)
}

/// Reads a new connection's hello (5 s at most) and checks who it claims to be.
fn greet(stream: TcpStream, ips: &[IpAddr], members: &[Member]) -> Result<Member, String> {
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    let sender = Sender::new(&stream).map_err(|e| e.to_string())?;
    let mut receiver = Receiver::new(stream);
    let hello = match receiver.recv(Instant::now() + Duration::from_secs(5), &|| true) {
        Ok(Some(Msg::Hello(hello))) => hello,
        Ok(other) => return Err(format!("expected a hello, got {other:?}")),
        Err(err) => return Err(err.to_string()),
    };
    let skew_ms = hello.time_ms as i64 - now_ms() as i64;
    let claim = ips.get(hello.node_rank).map(IpAddr::to_string);
    let problem = if hello.node_rank == 0 || claim.as_deref() != Some(hello.host.as_str()) {
        Some(format!(
            "a launcher says it is {} (node {}), which does not match --ips {} here",
            hello.host,
            hello.node_rank,
            ips.iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ))
    } else if members.iter().any(|m| m.hello.node_rank == hello.node_rank) {
        Some(format!(
            "two launchers say they are {} (node {})",
            hello.host, hello.node_rank
        ))
    } else {
        None
    };
    if let Some(message) = problem {
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

/// Other hosts: connects to the first host (retrying until `deadline`), says hello and waits for
/// `Go` or `Reject`. Returns the connection and the answer.
pub fn join(
    control: SocketAddr,
    hello: Hello,
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
        match TcpStream::connect_timeout(&control, left.min(Duration::from_secs(1))) {
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
    sender
        .send(&Msg::Hello(hello))
        .map_err(LaunchError::io(format!("saying hello to {control}")))?;
    debug!("connected to the first host's launcher at {control}; waiting for Go");
    // The first host answers by its own deadline, which is at most start_timeout from now.
    let answer_by = Instant::now() + start_timeout + Duration::from_secs(5);
    let answer = match receiver.recv(answer_by, &|| !interrupted()) {
        Ok(Some(msg @ (Msg::Go { .. } | Msg::Reject { .. }))) => msg,
        Ok(Some(other)) => {
            return fail(format!(
                "the first host's launcher answered {other:?} instead of Go"
            ));
        }
        Ok(None) => {
            return fail(format!(
                "the first host's launcher at {control} closed the connection before the start"
            ));
        }
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
