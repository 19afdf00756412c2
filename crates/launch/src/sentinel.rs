//! The orphan sentinel: a small process forked from the launcher before any thread exists. The
//! launcher tells it, through a pipe, the process group of every worker it starts. If the pipe
//! reaches end-of-file without a "clean exit" byte, the launcher died (even by SIGKILL), and the
//! sentinel SIGKILLs every group it was told of. PR_SET_PDEATHSIG already kills each worker; this
//! also reaches the workers' own children (data-loader processes, `sh -c` pipelines), which
//! PDEATHSIG does not (Horovod's safe_shell_exec uses the same pipe-EOF idea). Then it removes
//! the job's `/dev/shm` files, which the launcher would have removed, through the launcher's
//! [`job_files`](crate::job_files) record.

use std::io;

const WATCH: u8 = b'+';
const RELEASE: u8 = b'-';
const CLEAN_EXIT: u8 = b'.';

/// The launcher's end of the pipe to the sentinel.
pub struct Sentinel {
    write_fd: libc::c_int,
    pid: u32,
}

impl Sentinel {
    /// Forks the sentinel. Call while the process has a single thread (fork copies only the
    /// calling thread; a lock held by another thread would stay locked in the child).
    pub fn start() -> io::Result<Sentinel> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 fills two fds; O_CLOEXEC keeps them out of the workers.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let launcher_pid = std::process::id();
        // SAFETY: single-threaded here, so the child inherits no lock held by another thread;
        // it reads the pipe, kills, removes files and _exits.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => unsafe {
                libc::close(fds[1]);
                sentinel_main(fds[0], launcher_pid)
            },
            pid => {
                // SAFETY: closing our copy of the read end.
                unsafe { libc::close(fds[0]) };
                Ok(Sentinel {
                    write_fd: fds[1],
                    pid: pid as u32,
                })
            }
        }
    }

    /// The sentinel's pid (a child of the launcher that is not a worker).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Adds a worker's process group to the kill list.
    pub fn watch(&self, pgid: u32) {
        self.send(WATCH, pgid);
    }

    /// Removes a group whose leader has been reaped (its id may be reused later).
    pub fn release(&self, pgid: u32) {
        self.send(RELEASE, pgid);
    }

    /// The launcher is exiting in order: the sentinel exits without killing anything.
    pub fn disarm(self) {
        self.send(CLEAN_EXIT, 0);
        // SAFETY: closing our fd once.
        unsafe { libc::close(self.write_fd) };
    }

    fn send(&self, tag: u8, pgid: u32) {
        let mut record = [0u8; 5];
        record[0] = tag;
        record[1..].copy_from_slice(&pgid.to_le_bytes());
        // SAFETY: writes 5 bytes from a local buffer; records under PIPE_BUF are atomic.
        unsafe { libc::write(self.write_fd, record.as_ptr().cast(), record.len()) };
    }
}

/// The sentinel process: reads records until EOF, then kills the groups and removes the job's
/// `/dev/shm` files unless told all is well.
unsafe fn sentinel_main(read_fd: libc::c_int, launcher_pid: u32) -> ! {
    unsafe {
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(signal, libc::SIG_IGN);
        }
        let devnull = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if devnull >= 0 {
            libc::dup2(devnull, 0);
            libc::dup2(devnull, 1);
        }
        let mut groups = [0u32; 1024];
        let mut count = 0usize;
        let mut record = [0u8; 5];
        loop {
            if !read_exact(read_fd, &mut record) {
                break; // EOF: the launcher is gone
            }
            let pgid = u32::from_le_bytes([record[1], record[2], record[3], record[4]]);
            match record[0] {
                WATCH if count < groups.len() && pgid > 1 => {
                    groups[count] = pgid;
                    count += 1;
                }
                RELEASE => {
                    if let Some(i) = groups[..count].iter().position(|&g| g == pgid) {
                        groups[i] = groups[count - 1];
                        count -= 1;
                    }
                }
                CLEAN_EXIT => libc::_exit(0),
                _ => {}
            }
        }
        for &pgid in &groups[..count] {
            libc::kill(-(pgid as libc::pid_t), libc::SIGKILL);
        }
        // The workers are dead (SIGKILL is delivered before they run again): their files can go.
        let _ = crate::job_files::remove_job(&crate::job_files::record_path(launcher_pid));
        libc::_exit(0)
    }
}

/// Reads exactly `buf.len()` bytes; false on EOF or error.
unsafe fn read_exact(fd: libc::c_int, buf: &mut [u8]) -> bool {
    let mut filled = 0;
    while filled < buf.len() {
        let n = unsafe { libc::read(fd, buf[filled..].as_mut_ptr().cast(), buf.len() - filled) };
        if n > 0 {
            filled += n as usize;
        } else if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        } else {
            return false;
        }
    }
    true
}
