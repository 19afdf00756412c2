//! Who runs where: this host's node rank (its position in `--ips`), its workers and their devices,
//! node-major global ranks and every rank's endpoint `ip:start_port + local_rank`.

use std::net::{IpAddr, SocketAddr};

use crate::error::{LaunchError, Result};

use super::devices::Device;
use super::interfaces::InterfaceAddr;

/// The job's layout as seen from this host.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Every host, in `--ips` order.
    pub ips: Vec<IpAddr>,
    /// This host's position in `ips`.
    pub node_rank: usize,
    /// One device per local worker; every host must have the same count.
    pub devices: Vec<Device>,
    /// Rank r listens on `ips[node(r)]:start_port + local_rank(r)`.
    pub start_port: u16,
}

impl Topology {
    /// Workers on each host.
    pub fn local_world_size(&self) -> usize {
        self.devices.len()
    }
    /// Workers in the job.
    pub fn world_size(&self) -> usize {
        self.ips.len() * self.devices.len()
    }
    /// Global rank of this host's worker `local_rank`: node rank × local count + local rank.
    pub fn global_rank(&self, local_rank: usize) -> usize {
        self.node_rank * self.devices.len() + local_rank
    }
    /// This host's IP.
    pub fn host(&self) -> IpAddr {
        self.ips[self.node_rank]
    }
    /// Every rank's endpoint, indexed by global rank.
    pub fn endpoints(&self) -> Vec<SocketAddr> {
        let local = self.devices.len();
        (0..self.world_size())
            .map(|rank| {
                let port = self.start_port + (rank % local) as u16;
                SocketAddr::new(self.ips[rank / local], port)
            })
            .collect()
    }
}

/// Parses `--ips`: comma-separated IP addresses, no duplicates.
pub fn parse_ips(list: &str) -> Result<Vec<IpAddr>> {
    let mut ips = Vec::new();
    for (position, item) in list.split(',').map(str::trim).enumerate() {
        let ip: IpAddr = item.parse().map_err(|_| {
            LaunchError::Setting(format!(
                "--ips entry {position} `{item}` is not an IP address (hostnames are not resolved)"
            ))
        })?;
        if ips.contains(&ip) {
            return Err(LaunchError::Setting(format!(
                "--ips lists {ip} twice: every host appears once (node rank = position)"
            )));
        }
        ips.push(ip);
    }
    Ok(ips)
}

/// This host's node rank: `--host`, else `POD_IP`, else the one `--ips` entry that is an address
/// of a local interface. None or several matches are an error listing both sides.
pub fn find_this_host(
    ips: &[IpAddr],
    host_flag: Option<&str>,
    pod_ip: Option<&str>,
    interfaces: &[InterfaceAddr],
) -> Result<usize> {
    let listed = ips
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(",");
    if let Some((source, value)) = host_flag
        .map(|h| ("--host", h))
        .or(pod_ip.map(|p| ("POD_IP", p)))
    {
        let ip: IpAddr = value.trim().parse().map_err(|_| {
            LaunchError::Setting(format!("{source} `{value}` is not an IP address"))
        })?;
        return ips
            .iter()
            .position(|listed_ip| *listed_ip == ip)
            .ok_or_else(|| {
                LaunchError::Setting(format!("{source} {ip} is not in --ips {listed}"))
            });
    }
    let matches: Vec<usize> = (0..ips.len())
        .filter(|&i| interfaces.iter().any(|itf| itf.addr == ips[i]))
        .collect();
    let local = interfaces
        .iter()
        .map(|itf| format!("{}={}", itf.name, itf.addr))
        .collect::<Vec<_>>()
        .join(", ");
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => Err(LaunchError::Setting(format!(
            "none of --ips {listed} is an address of this machine (interfaces: {local}); \
             pass --host <this host's IP in --ips>"
        ))),
        several => Err(LaunchError::Setting(format!(
            "several --ips entries are addresses of this machine ({}; interfaces: {local}); \
             pass --host to say which one this launcher is",
            several
                .iter()
                .map(|&i| ips[i].to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn itf(name: &str, addr: &str) -> InterfaceAddr {
        InterfaceAddr {
            name: name.into(),
            addr: addr.parse().unwrap(),
        }
    }

    #[test]
    fn ranks_are_node_major_and_ports_follow_local_rank() {
        let topo = Topology {
            ips: parse_ips("10.0.0.1,10.0.0.2").unwrap(),
            node_rank: 1,
            devices: vec![Device::Cpu; 2],
            start_port: 6070,
        };
        assert_eq!(topo.world_size(), 4);
        assert_eq!(topo.global_rank(1), 3);
        let eps: Vec<String> = topo.endpoints().iter().map(|e| e.to_string()).collect();
        assert_eq!(
            eps,
            [
                "10.0.0.1:6070",
                "10.0.0.1:6071",
                "10.0.0.2:6070",
                "10.0.0.2:6071"
            ]
        );
    }

    #[test]
    fn this_host_is_found_by_interface_address_or_override() {
        let ips = parse_ips("10.0.0.1,10.0.0.2").unwrap();
        let itfs = [itf("lo", "127.0.0.1"), itf("eth0", "10.0.0.2")];
        assert_eq!(find_this_host(&ips, None, None, &itfs).unwrap(), 1);
        assert_eq!(
            find_this_host(&ips, Some("10.0.0.1"), None, &itfs).unwrap(),
            0
        );
        assert_eq!(
            find_this_host(&ips, None, Some("10.0.0.1"), &itfs).unwrap(),
            0
        );
        let none = find_this_host(&ips, None, None, &[itf("lo", "127.0.0.1")]).unwrap_err();
        assert!(none.to_string().contains("lo=127.0.0.1"), "{none}");
        let both = [itf("eth0", "10.0.0.1"), itf("eth1", "10.0.0.2")];
        let err = find_this_host(&ips, None, None, &both)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("10.0.0.1, 10.0.0.2") && err.contains("--host"),
            "{err}"
        );
        assert!(find_this_host(&ips, Some("10.0.0.9"), None, &itfs).is_err());
    }

    #[test]
    fn ips_are_addresses_listed_once() {
        assert!(parse_ips("10.0.0.1,10.0.0.1").is_err());
        assert!(parse_ips("gpu-node-1").is_err());
    }
}
