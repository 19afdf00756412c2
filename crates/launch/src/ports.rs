//! Port preflight: every worker port is bind-probed before any worker starts, and a taken port is
//! reported with the process that holds it (found through /proc/net/tcp* → socket inode → /proc/PID/fd).

use std::net::{IpAddr, SocketAddr, TcpListener};

use crate::error::LaunchError;

/// A port another socket already holds, with its owner when /proc shows it.
#[derive(Debug, Clone)]
pub struct TakenPort {
    /// The address the probe could not bind.
    pub addr: SocketAddr,
    /// Why the bind failed.
    pub error: String,
    /// `pid N (command line)` of the holder, when visible.
    pub owner: Option<String>,
    /// The address is not one of this machine's (a wrong `--host`/`POD_IP`), not a taken port.
    pub foreign_address: bool,
}

impl std::fmt::Display for TakenPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.foreign_address {
            return write!(
                f,
                "cannot bind {} ({}): {} is not an address of this machine (check --host / POD_IP)",
                self.addr,
                self.error,
                self.addr.ip()
            );
        }
        write!(
            f,
            "port {} on {} is not free ({})",
            self.addr.port(),
            self.addr.ip(),
            self.error
        )?;
        match &self.owner {
            Some(owner) => write!(f, ": held by {owner}"),
            None => write!(
                f,
                ": its holder is not visible in /proc (another user's process?)"
            ),
        }
    }
}

/// Bind-probes `ip:port` for each port; returns the ones that are taken.
/// std's listener sets SO_REUSEADDR, so sockets in TIME_WAIT do not count as taken.
pub fn probe(ip: IpAddr, ports: impl IntoIterator<Item = u16>) -> Vec<TakenPort> {
    let mut taken = Vec::new();
    for port in ports {
        let addr = SocketAddr::new(ip, port);
        if let Err(err) = TcpListener::bind(addr) {
            let foreign_address = err.kind() == std::io::ErrorKind::AddrNotAvailable;
            taken.push(TakenPort {
                addr,
                error: err.to_string(),
                owner: if foreign_address {
                    None
                } else {
                    owner_of(port)
                },
                foreign_address,
            });
        }
    }
    taken
}

/// The first of `count` consecutive ports on `ip` that are free now: the system picks a port,
/// and the run starting there is bind-probed (up to 100 tries). A run of one is any free port.
pub fn free_run(ip: IpAddr, count: usize) -> Result<u16, LaunchError> {
    for _ in 0..100 {
        let first = TcpListener::bind(SocketAddr::new(ip, 0))
            .and_then(|listener| listener.local_addr())
            .map_err(LaunchError::io(format!("cannot bind a port on {ip}")))?
            .port();
        if usize::from(first) + count > 65536 {
            continue;
        }
        let run = (0..count).map(|i| first + i as u16);
        if probe(ip, run).is_empty() {
            return Ok(first);
        }
    }
    Err(LaunchError::Setting(format!(
        "found no {count} consecutive free ports on {ip} in 100 tries"
    )))
}

/// `pid N (cmdline)` of a process with a TCP socket bound to local `port` (listening ones first).
pub fn owner_of(port: u16) -> Option<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(socket_inodes(&text, port));
        }
    }
    inodes.sort_by_key(|&(listening, _)| !listening);
    inodes
        .into_iter()
        .find_map(|(_, inode)| process_with_socket(inode))
}

/// `(is_listening, inode)` of each socket in a /proc/net/tcp table whose local port is `port`.
pub fn socket_inodes(table: &str, port: u16) -> Vec<(bool, u64)> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit(':').next()?;
            if u16::from_str_radix(local_port, 16).ok()? != port {
                return None;
            }
            let inode: u64 = fields.get(9)?.parse().ok()?;
            (inode != 0).then_some((*fields.get(3)? == "0A", inode))
        })
        .collect()
}

/// Finds the process holding socket `inode` by reading /proc/*/fd links.
fn process_with_socket(inode: u64) -> Option<String> {
    let target = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == target));
        if holds {
            return Some(format!("pid {pid} ({})", command_line(pid)));
        }
    }
    None
}

/// A process's command line with spaces between arguments, or `?`.
pub fn command_line(pid: u32) -> String {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(raw) if !raw.is_empty() => {
            let text = String::from_utf8_lossy(&raw)
                .trim_end_matches('\0')
                .replace(['\0', '\n'], " ");
            match text.char_indices().nth(200) {
                Some((cut, _)) => format!("{} ...", &text[..cut]),
                None => text,
            }
        }
        _ => "?".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_tcp() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:17B6 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:17B6 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1\n";
        assert_eq!(
            socket_inodes(table, 6070),
            vec![(true, 4242), (false, 4343)]
        );
        assert!(socket_inodes(table, 6071).is_empty());
    }

    #[test]
    fn a_listening_port_is_reported_with_this_process() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let taken = probe("127.0.0.1".parse().unwrap(), [port]);
        assert_eq!(taken.len(), 1);
        let text = taken[0].to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
    }

    #[test]
    fn an_address_of_another_machine_is_not_called_a_taken_port() {
        let taken = probe("198.51.100.7".parse().unwrap(), [6070]);
        let text = taken[0].to_string();
        assert!(text.contains("is not an address of this machine"), "{text}");
    }
}
