//! Who runs where: this host's node rank (its position in `--ips`), its workers and their devices,
//! node-major global ranks and every rank's endpoint `ip:start_port + local_rank`.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, bail};

use super::interfaces::InterfaceAddr;

/// The device a worker uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    /// A CPU worker (`--nproc_per_node` without GPUs).
    Cpu,
    /// A GPU: `id` as the user named it, `ordinal` its index inside CUDA_VISIBLE_DEVICES.
    Cuda { id: String, ordinal: usize },
}

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
pub fn parse_ips(list: &str) -> anyhow::Result<Vec<IpAddr>> {
    let mut ips = Vec::new();
    for (position, item) in list.split(',').map(str::trim).enumerate() {
        let ip: IpAddr = item.parse().with_context(|| {
            format!(
                "--ips entry {position} `{item}` is not an IP address (hostnames are not resolved)"
            )
        })?;
        if ips.contains(&ip) {
            bail!("--ips lists {ip} twice: every host appears once (node rank = position)");
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
) -> anyhow::Result<usize> {
    let listed = ips
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(",");
    if let Some((source, value)) = host_flag
        .map(|h| ("--host", h))
        .or(pod_ip.map(|p| ("POD_IP", p)))
    {
        let ip: IpAddr = value
            .trim()
            .parse()
            .with_context(|| format!("{source} `{value}` is not an IP address"))?;
        return ips
            .iter()
            .position(|listed_ip| *listed_ip == ip)
            .with_context(|| format!("{source} {ip} is not in --ips {listed}"));
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
        [] => bail!(
            "none of --ips {listed} is an address of this machine (interfaces: {local}); \
             pass --host <this host's IP in --ips>"
        ),
        several => bail!(
            "several --ips entries are addresses of this machine ({}; interfaces: {local}); \
             pass --host to say which one this launcher is",
            several
                .iter()
                .map(|&i| ips[i].to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The devices of this host's workers.
///
/// `visible` is CUDA_VISIBLE_DEVICES (None when unset); `gpu_count` the GPUs the driver lists
/// (used when neither `--gpus` nor CUDA_VISIBLE_DEVICES says).
pub fn local_devices(
    gpus: Option<&str>,
    nproc_per_node: Option<usize>,
    visible: Option<&str>,
    gpu_count: usize,
) -> anyhow::Result<Vec<Device>> {
    let visible: Option<Vec<String>> = visible.map(|v| {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    });
    let devices = match gpus {
        Some(list) => selected_gpus(list, visible.as_deref())?,
        None => match nproc_per_node {
            Some(n) => vec![Device::Cpu; n],
            None => {
                let ids: Vec<String> = match &visible {
                    Some(v) => v.clone(),
                    None => (0..gpu_count).map(|i| i.to_string()).collect(),
                };
                if ids.is_empty() {
                    vec![Device::Cpu]
                } else {
                    ids.into_iter()
                        .enumerate()
                        .map(|(ordinal, id)| Device::Cuda { id, ordinal })
                        .collect()
                }
            }
        },
    };
    if let Some(n) = nproc_per_node {
        if n != devices.len() {
            bail!(
                "--nproc_per_node {n} but --gpus lists {} devices: give one or make them agree",
                devices.len()
            );
        }
    }
    if devices.is_empty() {
        bail!("no workers to start: --nproc_per_node must be at least 1");
    }
    Ok(devices)
}

/// `--gpus 0,1`: ids looked up in CUDA_VISIBLE_DEVICES (when set) to get each worker's ordinal.
fn selected_gpus(list: &str, visible: Option<&[String]>) -> anyhow::Result<Vec<Device>> {
    let mut devices = Vec::new();
    for id in list.split(',').map(str::trim) {
        if id.is_empty() {
            bail!("--gpus `{list}` has an empty entry");
        }
        if devices
            .iter()
            .any(|d| matches!(d, Device::Cuda { id: seen, .. } if seen == id))
        {
            bail!("--gpus lists GPU {id} twice");
        }
        let ordinal = match visible {
            Some(visible) => visible.iter().position(|v| v == id).with_context(|| {
                format!(
                    "--gpus {id} is not in CUDA_VISIBLE_DEVICES={}",
                    visible.join(",")
                )
            })?,
            None => id
                .parse::<usize>()
                .with_context(|| format!("--gpus entry `{id}` is not a GPU number"))?,
        };
        devices.push(Device::Cuda {
            id: id.to_string(),
            ordinal,
        });
    }
    Ok(devices)
}

/// GPUs the NVIDIA driver lists in /proc (0 without a driver); no CUDA library is loaded.
pub fn driver_gpu_count() -> usize {
    std::fs::read_dir("/proc/driver/nvidia/gpus")
        .map(|dir| dir.count())
        .unwrap_or(0)
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
    fn gpus_are_relative_to_cuda_visible_devices() {
        let devs = local_devices(Some("7,5"), None, Some("5,7"), 0).unwrap();
        assert_eq!(
            devs[0],
            Device::Cuda {
                id: "7".into(),
                ordinal: 1
            }
        );
        assert_eq!(
            devs[1],
            Device::Cuda {
                id: "5".into(),
                ordinal: 0
            }
        );
        assert!(local_devices(Some("3"), None, Some("5,7"), 0).is_err());
        assert!(local_devices(Some("1,1"), None, None, 0).is_err());
        assert_eq!(
            local_devices(None, Some(3), None, 8).unwrap(),
            vec![Device::Cpu; 3]
        );
        assert_eq!(local_devices(None, None, None, 2).unwrap().len(), 2);
        assert_eq!(
            local_devices(None, None, Some(""), 2).unwrap(),
            vec![Device::Cpu]
        );
        assert!(local_devices(Some("0,1"), Some(3), None, 0).is_err());
        assert!(parse_ips("10.0.0.1,10.0.0.1").is_err());
        assert!(parse_ips("gpu-node-1").is_err());
    }
}
