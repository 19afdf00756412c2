//! The device a launcher bound a worker to: `RINGDET_DEVICE` (`cpu` or `cuda:<ordinal>`, what
//! `ringdet launch` writes), else `FLAGS_selected_gpus` (fleetrun's `--gpus`, one ordinal per
//! worker). `RINGDET_DEVICE` is read first so that a `FLAGS_selected_gpus` left in the user's
//! shell cannot turn a CPU worker of `ringdet launch` into a GPU one.

use super::{WorkerEnvError, paddle, ringdet};

/// What the launcher said about this worker's device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundDevice {
    /// A CPU worker (`RINGDET_DEVICE=cpu`: `ringdet launch --nproc_per_node N` without `--gpus`).
    Cpu,
    /// One CUDA device, by its ordinal among the devices the worker sees.
    Gpu {
        /// The ordinal (index inside CUDA_VISIBLE_DEVICES).
        ordinal: usize,
        /// The variable that said so.
        var: &'static str,
    },
}

/// Reads the process environment (see [`bound_device_from`]).
pub fn bound_device() -> Result<Option<BoundDevice>, WorkerEnvError> {
    bound_device_from(|name| std::env::var(name).ok())
}

/// The device the launcher bound this worker to, `Ok(None)` when no launcher said (a plain
/// `ringdet train`, or torchrun / Slurm, which bind no device). A malformed value is an error
/// naming the variable; so is a `FLAGS_selected_gpus` list of several devices (ringdet runs one
/// device per worker).
pub fn bound_device_from(
    get: impl Fn(&str) -> Option<String>,
) -> Result<Option<BoundDevice>, WorkerEnvError> {
    if let Some(value) = get(ringdet::DEVICE).filter(|v| !v.trim().is_empty()) {
        let v = value.trim();
        if v == "cpu" {
            return Ok(Some(BoundDevice::Cpu));
        }
        return match v.strip_prefix("cuda:").map(|n| n.parse::<usize>()) {
            Some(Ok(ordinal)) => Ok(Some(BoundDevice::Gpu {
                ordinal,
                var: ringdet::DEVICE,
            })),
            _ => Err(WorkerEnvError::Invalid {
                var: ringdet::DEVICE,
                value,
                expected: "`cpu` or `cuda:<ordinal>`",
            }),
        };
    }
    let Some(value) = get(paddle::SELECTED_GPUS).filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    match value.trim().parse::<usize>() {
        Ok(ordinal) => Ok(Some(BoundDevice::Gpu {
            ordinal,
            var: paddle::SELECTED_GPUS,
        })),
        Err(_) => Err(WorkerEnvError::Invalid {
            var: paddle::SELECTED_GPUS,
            value,
            expected: "one GPU ordinal (ringdet runs one device per worker)",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(pairs: &[(&str, &str)]) -> Result<Option<BoundDevice>, WorkerEnvError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        bound_device_from(|name| map.get(name).cloned())
    }

    #[test]
    fn the_launchers_binding_is_read() {
        assert_eq!(read(&[]).unwrap(), None);
        assert_eq!(
            read(&[("RINGDET_DEVICE", "cpu")]).unwrap(),
            Some(BoundDevice::Cpu)
        );
        assert_eq!(
            read(&[("RINGDET_DEVICE", "cuda:3"), ("FLAGS_selected_gpus", "3")]).unwrap(),
            Some(BoundDevice::Gpu {
                ordinal: 3,
                var: "RINGDET_DEVICE"
            })
        );
        assert_eq!(
            read(&[("FLAGS_selected_gpus", " 1 ")]).unwrap(),
            Some(BoundDevice::Gpu {
                ordinal: 1,
                var: "FLAGS_selected_gpus"
            })
        );
        // ringdet launch's CPU worker wins over a FLAGS_selected_gpus left in the shell.
        assert_eq!(
            read(&[("RINGDET_DEVICE", "cpu"), ("FLAGS_selected_gpus", "0")]).unwrap(),
            Some(BoundDevice::Cpu)
        );
        assert_eq!(read(&[("FLAGS_selected_gpus", "")]).unwrap(), None);
    }

    #[test]
    fn a_bad_binding_names_the_variable() {
        let e = read(&[("FLAGS_selected_gpus", "0,1")])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("FLAGS_selected_gpus=\"0,1\" is not one GPU ordinal"),
            "{e}"
        );
        let e = read(&[("RINGDET_DEVICE", "gpu0")]).unwrap_err().to_string();
        assert!(e.contains("RINGDET_DEVICE=\"gpu0\""), "{e}");
    }
}
