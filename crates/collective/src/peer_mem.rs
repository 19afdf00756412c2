//! Reading another rank's buffer on the same host directly (Linux cross-memory attach,
//! `process_vm_readv`): one copy from the peer's memory into ours, instead of the peer copying
//! into shared memory and us copying out. The hierarchical all-reduce uses it for large buffers.
//!
//! The kernel allows it between processes of the same user; where the Yama security module
//! restricts it to ancestors (`kernel.yama.ptrace_scope = 1`), [`allow_same_user_reads`] lets the
//! other ranks of the job in.

use crate::error::{CommError, Result};

/// Where a rank's buffer lives: its process and the buffer's address there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerBuf {
    /// Process id.
    pub pid: u32,
    /// Address of the first byte.
    pub addr: u64,
    /// Length in bytes.
    pub len: u64,
}

impl PeerBuf {
    /// Describes `data` in this process.
    pub fn of(data: &[u8]) -> PeerBuf {
        PeerBuf {
            pid: std::process::id(),
            addr: data.as_ptr() as u64,
            len: data.len() as u64,
        }
    }

    /// 20 bytes: pid, address, length (little-endian).
    pub fn encode(&self) -> [u8; 20] {
        let mut b = [0u8; 20];
        b[..4].copy_from_slice(&self.pid.to_le_bytes());
        b[4..12].copy_from_slice(&self.addr.to_le_bytes());
        b[12..].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    /// Inverse of [`PeerBuf::encode`].
    pub fn decode(b: &[u8; 20]) -> PeerBuf {
        let u64_at = |i: usize| {
            let mut v = [0u8; 8];
            v.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(v)
        };
        PeerBuf {
            pid: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            addr: u64_at(4),
            len: u64_at(12),
        }
    }

    /// Copies `dst.len()` bytes starting at byte `offset` of the peer's buffer into `dst`.
    /// `rank` and `op` (e.g. `all_reduce #12`) name the peer and the operation in errors.
    pub fn read(&self, offset: usize, dst: &mut [u8], rank: usize, op: &str) -> Result<()> {
        let peer_error = |what: String| CommError::Peer {
            op: op.to_string(),
            rank,
            addr: format!("process {}", self.pid),
            what,
        };
        let end = offset.checked_add(dst.len());
        if end.is_none_or(|e| e as u64 > self.len) {
            return Err(peer_error(format!(
                "has a buffer of {} bytes, cannot read {} at offset {offset}",
                self.len,
                dst.len()
            )));
        }
        let mut done = 0;
        while done < dst.len() {
            let rest = &mut dst[done..];
            let local = libc::iovec {
                iov_base: rest.as_mut_ptr().cast(),
                iov_len: rest.len(),
            };
            let remote = libc::iovec {
                iov_base: (self.addr as usize + offset + done) as *mut libc::c_void,
                iov_len: rest.len(),
            };
            // SAFETY: `local` covers a live, exclusively borrowed slice; the kernel checks the
            // remote range against the peer's address space and fails instead of faulting.
            let n = unsafe {
                libc::process_vm_readv(self.pid as libc::pid_t, &local, 1, &remote, 1, 0)
            };
            if n > 0 {
                done += n as usize;
                continue;
            }
            let e = std::io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ESRCH) => peer_error("exited".into()),
                Some(libc::EPERM) => peer_error(format!(
                    "cannot be read ({e}): ranks of a host must run as the same user, or set \
                     RINGDET_HIERARCHICAL=0"
                )),
                _ => peer_error(format!("cannot be read: process_vm_readv: {e}")),
            });
        }
        Ok(())
    }
}

/// Where Yama restricts cross-process reads to ancestors, lets any process of this user read
/// this one (the other ranks of the host are siblings, not ancestors). Best effort: if it fails,
/// the first direct read says why.
pub fn allow_same_user_reads() {
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").unwrap_or_default();
    if scope.trim() == "1" {
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_PTRACER, libc::PR_SET_PTRACER_ANY, 0, 0, 0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process_and_checks_bounds() {
        let src: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let peer = PeerBuf::decode(&PeerBuf::of(&src).encode());
        let mut dst = vec![0u8; 70_000];
        peer.read(20_000, &mut dst, 3, "all_reduce #1").unwrap();
        assert_eq!(dst, src[20_000..90_000]);
        let err = peer
            .read(40_000, &mut dst, 3, "all_reduce #1")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("all_reduce #1: rank 3 (process "), "{err}");
    }
}
