//! Worker processes: each starts in its own process group with PR_SET_PDEATHSIG = SIGKILL (it dies
//! with the launcher, even a SIGKILLed one); one reaper thread reports exits as they happen
//! (waitid, no polling) and kills whatever an exited worker left in its group before its pid is
//! released; stopping is SIGTERM to every group, SIGKILL after the grace period.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use super::events::{Event, now_ms};
use super::failure::ExitKind;

/// Process ids of workers not yet reaped. Groups are signalled only under this lock, so a
/// signalled pgid is always one of ours (an unreaped leader keeps its id from being reused).
#[derive(Clone, Default)]
pub struct LiveGroups(Arc<Mutex<HashSet<u32>>>);

impl LiveGroups {
    /// Sends `signal` to every live worker's process group; returns how many were signalled.
    pub fn signal_all(&self, signal: i32) -> usize {
        let live = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        for &pid in live.iter() {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
            unsafe { libc::kill(-(pid as libc::pid_t), signal) };
        }
        live.len()
    }
    /// Whether any worker is still running.
    pub fn any(&self) -> bool {
        !self
            .0
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .is_empty()
    }
    fn insert(&self, pid: u32) {
        self.0
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(pid);
    }
}

/// Field `n` (numbered as in proc(5), from 3, the state) of `/proc/<pid>/stat`; None if the
/// process is gone.
pub fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is parenthesised and may hold spaces and parentheses.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name
        .split_whitespace()
        .nth(n.checked_sub(3)?)
        .map(str::to_string)
}

/// A process's state letter from `/proc/<pid>/stat` (`R`, `S`, `D`, `T` stopped, `t` stopped
/// by a tracer, `Z`, ...); None if it is gone.
pub fn process_state(pid: u32) -> Option<char> {
    stat_field(pid, 3)?.chars().next()
}

/// Whether a process is stopped (by a signal or a tracer).
pub fn is_stopped(pid: u32) -> bool {
    matches!(process_state(pid), Some('T' | 't'))
}

/// Makes this process the reaper of orphaned descendants, so a worker's children that outlive it
/// are re-parented to the launcher (and stopped by it) instead of escaping to init.
pub fn become_subreaper() {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// Starts `program args` with `env` added, stdin from /dev/null and stdout+stderr appended to
/// `log`, as the leader of a new process group that receives SIGKILL when the launcher dies.
/// Must be called from the thread that lives as long as the launcher (PDEATHSIG follows the
/// spawning thread).
pub fn spawn(
    program: &str,
    args: &[String],
    env: &[(String, String)],
    removed_env: &[&str],
    log: &File,
    live: &LiveGroups,
) -> io::Result<u32> {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?);
    for name in removed_env {
        command.env_remove(name);
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    let launcher = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe functions.
    unsafe {
        command.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The launcher may have died before prctl took effect: then nobody would kill us.
            if libc::getppid() != launcher {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    let pid = child.id();
    // Also from the parent, so that the group exists before we ever signal it.
    // SAFETY: setpgid with integer arguments; failure (already exec'd) is harmless.
    unsafe { libc::setpgid(pid as libc::pid_t, pid as libc::pid_t) };
    live.insert(pid);
    // The reaper thread waits for it; the Child handle is not needed (dropping it does not wait).
    drop(child);
    Ok(pid)
}

/// Starts the thread that reaps every child: a worker's exit becomes `Event::WorkerExited`, after
/// its process group has been sent SIGKILL (leftover grandchildren die with their worker).
/// Orphans re-parented to us are reaped silently. Ends when no child is left.
pub fn start_reaper(live: LiveGroups, events: Sender<Event>) {
    std::thread::Builder::new()
        .name("reaper".into())
        .spawn(move || reap_loop(live, events))
        .map(|_| ())
        .unwrap_or_else(|err| tracing::error!("cannot start the reaper thread: {err}"));
}

fn reap_loop(live: LiveGroups, events: Sender<Event>) {
    loop {
        let first = match next_exit(true) {
            Err(()) => return, // ECHILD: nothing left to wait for
            Ok(None) => continue,
            Ok(Some(exit)) => exit,
        };
        let at_ms = now_ms();
        let mut batch = Vec::new();
        if reap(&live, first.0) {
            batch.push(first);
        }
        while let Ok(Some(exit)) = next_exit(false) {
            if reap(&live, exit.0) {
                batch.push(exit);
            }
        }
        // Exits seen together (the reaper was not scheduled in between) carry no order; report
        // deaths by signal first, as they are the likelier cause of their peers' errors.
        batch.sort_by_key(|(_, kind)| matches!(kind, ExitKind::Code(_)));
        for (pid, kind) in batch {
            let exited = Event::WorkerExited {
                pid: pid as u32,
                kind,
                at_ms,
            };
            if events.send(exited).is_err() {
                return;
            }
        }
    }
}

/// The next exited child, left unreaped (WNOWAIT) so its pid, and thus its process group id,
/// stay ours while we clean up. `Ok(None)`: none yet (non-blocking); `Err`: no children at all.
fn next_exit(block: bool) -> Result<Option<(libc::pid_t, ExitKind)>, ()> {
    let flags = libc::WEXITED | libc::WNOWAIT | if block { 0 } else { libc::WNOHANG };
    // SAFETY: siginfo_t is plain data; waitid fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    if unsafe { libc::waitid(libc::P_ALL, 0, &mut info, flags) } != 0 {
        return match io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => Ok(None),
            _ => Err(()),
        };
    }
    // SAFETY: waitid succeeded with WEXITED, so the SIGCHLD fields are valid (pid 0: none yet).
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    let kind = if info.si_code == libc::CLD_EXITED {
        ExitKind::Code(status)
    } else {
        ExitKind::Signal(status)
    };
    Ok(Some((pid, kind)))
}

/// Reaps child `pid`; if it was a worker, first SIGKILLs what is left of its process group.
/// Returns whether it was a worker.
fn reap(live: &LiveGroups, pid: libc::pid_t) -> bool {
    let mut guard = live.0.lock().unwrap_or_else(|poison| poison.into_inner());
    let was_worker = guard.remove(&(pid as u32));
    if was_worker {
        // SAFETY: the leader is an unreaped zombie, so this pgid is still ours.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    let mut raw = 0;
    // SAFETY: reaps exactly this child.
    unsafe { libc::waitpid(pid, &mut raw, libc::WNOHANG) };
    was_worker
}

/// SIGKILLs children of this process that are neither live workers nor in `keep` (orphans that
/// left their worker's group and were re-parented to us). They are reaped by the reaper thread.
pub fn kill_reparented(live: &LiveGroups, keep: &[u32]) -> usize {
    let me = std::process::id();
    let guard = live.0.lock().unwrap_or_else(|poison| poison.into_inner());
    let mut killed = 0;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if guard.contains(&pid) || keep.contains(&pid) || parent_of(pid) != Some(me) {
            continue;
        }
        // SAFETY: an unreaped child of ours: its pid cannot have been reused.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        killed += 1;
    }
    killed
}

/// The parent pid from /proc/PID/stat (the field after the parenthesised command name).
pub fn parent_of(pid: u32) -> Option<u32> {
    stat_field(pid, 4)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_of_this_process_is_known() {
        let mine = parent_of(std::process::id()).unwrap();
        // SAFETY: getppid has no preconditions.
        assert_eq!(mine as i32, unsafe { libc::getppid() });
        assert!(matches!(process_state(std::process::id()), Some('R' | 'S')));
    }

    #[test]
    fn a_stopped_child_is_seen_stopped() {
        let mut child = Command::new("sleep").arg("10").spawn().unwrap();
        let pid = child.id();
        assert!(!is_stopped(pid));
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) };
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !is_stopped(pid) && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let stopped = is_stopped(pid);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(stopped);
    }
}
