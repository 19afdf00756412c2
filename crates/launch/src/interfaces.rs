//! Which IP addresses belong to this machine (getifaddrs), so that the launcher finds itself in
//! `--ips` by address and never by hostname resolution (which returns 127.0.0.1 on many hosts:
//! Paddle#34533).
//!
//! getifaddrs answers for the network namespace of the calling process, so a launcher started
//! inside a namespace (a container, or a "host" of scripts/netns-cluster.sh, whose only addresses
//! are lo's and its 10.77.0.x) matches `--ips` against that namespace's interfaces alone:
//! crates/launch/tests/netns_cluster.rs runs `ringdet launch --ips` across two such hosts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One address of a local network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddr {
    /// Interface name, e.g. `eth0`.
    pub name: String,
    /// One of its addresses.
    pub addr: IpAddr,
}

/// Every IPv4 and IPv6 address of every local interface.
pub fn local_addresses() -> std::io::Result<Vec<InterfaceAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut found = Vec::new();
    let mut cursor = head;
    while !cursor.is_null() {
        // SAFETY: cursor is a node of the list returned by getifaddrs, valid until freeifaddrs.
        let entry = unsafe { &*cursor };
        if let Some(addr) = unsafe { sockaddr_ip(entry.ifa_addr) } {
            // SAFETY: ifa_name is a NUL-terminated string owned by the list.
            let name = unsafe { std::ffi::CStr::from_ptr(entry.ifa_name) };
            found.push(InterfaceAddr {
                name: name.to_string_lossy().into_owned(),
                addr,
            });
        }
        cursor = entry.ifa_next;
    }
    // SAFETY: head came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(found)
}

/// The IP address in a `sockaddr`, if it is IPv4 or IPv6.
///
/// # Safety
/// `sa` is null or points to a valid socket address of the family it names.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    match i32::from(unsafe { (*sa).sa_family }) {
        libc::AF_INET => {
            let v4 = unsafe { &*(sa as *const libc::sockaddr_in) };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))))
        }
        libc::AF_INET6 => {
            let v6 = unsafe { &*(sa as *const libc::sockaddr_in6) };
            Some(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_is_listed() {
        let addrs = super::local_addresses().unwrap();
        assert!(addrs.iter().any(|a| a.addr.is_loopback()), "{addrs:?}");
    }
}
