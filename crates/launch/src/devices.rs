//! Which devices this host's workers get: `--gpus` ids looked up in CUDA_VISIBLE_DEVICES (so
//! each worker knows its ordinal, as fleetrun's `FLAGS_selected_gpus`), or CPU workers.

use crate::error::{LaunchError, Result};

/// The device a worker uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    /// A CPU worker (`--nproc_per_node` without GPUs).
    Cpu,
    /// A GPU: `id` as the user named it, `ordinal` its index inside CUDA_VISIBLE_DEVICES.
    Cuda {
        /// The id as given in `--gpus` (or CUDA_VISIBLE_DEVICES).
        id: String,
        /// Its index among the devices the worker sees.
        ordinal: usize,
    },
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
) -> Result<Vec<Device>> {
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
    if let Some(n) = nproc_per_node
        && n != devices.len()
    {
        return Err(LaunchError::Setting(format!(
            "--nproc_per_node {n} but --gpus lists {} devices: give one or make them agree",
            devices.len()
        )));
    }
    if devices.is_empty() {
        return Err(LaunchError::Setting(
            "no workers to start: --nproc_per_node must be at least 1".into(),
        ));
    }
    Ok(devices)
}

/// `--gpus 0,1`: ids looked up in CUDA_VISIBLE_DEVICES (when set) to get each worker's ordinal.
fn selected_gpus(list: &str, visible: Option<&[String]>) -> Result<Vec<Device>> {
    let mut devices = Vec::new();
    for id in list.split(',').map(str::trim) {
        if id.is_empty() {
            return Err(LaunchError::Setting(format!(
                "--gpus `{list}` has an empty entry"
            )));
        }
        if devices
            .iter()
            .any(|d| matches!(d, Device::Cuda { id: seen, .. } if seen == id))
        {
            return Err(LaunchError::Setting(format!("--gpus lists GPU {id} twice")));
        }
        let ordinal = match visible {
            Some(visible) => visible.iter().position(|v| v == id).ok_or_else(|| {
                LaunchError::Setting(format!(
                    "--gpus {id} is not in CUDA_VISIBLE_DEVICES={}",
                    visible.join(",")
                ))
            })?,
            None => id.parse::<usize>().map_err(|_| {
                LaunchError::Setting(format!("--gpus entry `{id}` is not a GPU number"))
            })?,
        };
        devices.push(Device::Cuda {
            id: id.to_string(),
            ordinal,
        });
    }
    Ok(devices)
}

/// Refuses `--gpus` entries whose ordinal is not among the CUDA devices this process sees.
/// `visible` is the CUDA probe's answer: the device count, or why there is none (no driver).
/// CPU workers pass.
pub fn check_visible(
    devices: &[Device],
    visible: std::result::Result<usize, String>,
) -> Result<()> {
    let count = *visible.as_ref().unwrap_or(&0);
    let missing: Vec<String> = devices
        .iter()
        .filter_map(|d| match d {
            Device::Cuda { id, ordinal } if *ordinal >= count => {
                Some(if id == &ordinal.to_string() {
                    id.clone()
                } else {
                    format!("{id} (ordinal {ordinal})")
                })
            }
            _ => None,
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let listed: Vec<&str> = devices
        .iter()
        .filter_map(|d| match d {
            Device::Cuda { id, .. } => Some(id.as_str()),
            Device::Cpu => None,
        })
        .collect();
    let seen = match (count, &visible) {
        (0, Err(why)) => format!("no CUDA device is visible ({why})"),
        (0, Ok(_)) => "no CUDA device is visible".to_string(),
        (n, _) => format!("{n} CUDA device(s) are visible, ordinals 0 to {}", n - 1),
    };
    Err(LaunchError::Setting(format!(
        "--gpus {}: {seen}; missing: GPU {}. Without GPUs, start CPU workers with --nproc_per_node N",
        listed.join(","),
        missing.join(", GPU ")
    )))
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
    }

    #[test]
    fn gpus_that_cuda_does_not_show_are_named() {
        let devs = local_devices(Some("0,7"), None, None, 0).unwrap();
        let e = check_visible(&devs, Err("no driver".into()))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "--gpus 0,7: no CUDA device is visible (no driver); missing: GPU 0, GPU 7."
            ),
            "{e}"
        );
        let e = check_visible(&devs, Ok(4)).unwrap_err().to_string();
        assert!(
            e.contains("4 CUDA device(s) are visible, ordinals 0 to 3; missing: GPU 7."),
            "{e}"
        );
        let devs = local_devices(Some("7"), None, Some("5,7"), 0).unwrap();
        let e = check_visible(&devs, Ok(1)).unwrap_err().to_string();
        assert!(e.contains("missing: GPU 7 (ordinal 1)."), "{e}");
        assert!(check_visible(&devs, Ok(2)).is_ok());
        assert!(check_visible(&[Device::Cpu, Device::Cpu], Err("no driver".into())).is_ok());
    }
}
