//! Which device a rank trains on, as PaddleDetection decides it: `use_gpu` from the config
//! (`runtime.yml`, or `-o use_gpu=...`), the GPU the launcher bound to the rank (`--gpus` /
//! `--selected_gpus` → `RINGDET_DEVICE` / `FLAGS_selected_gpus`, read by
//! [`ringdet_collective::worker_env::bound_device`]), and what CUDA shows. Then which backend
//! carries the ranks' gradients ([`select_comm_backend`], `comm_backend: ring | nccl | auto`).
//!
//! | `use_gpu` | launcher bound | CUDA | device |
//! |---|---|---|---|
//! | false | anything | not asked | CPU |
//! | true | GPU *n* | device *n* usable | `cuda:n` |
//! | true | GPU *n* | device *n* missing or busy | error: `rank R: --gpus bound CUDA device n but it cannot be used: <cause>` |
//! | true | no GPU (nothing, or a CPU worker of `ringdet launch --nproc_per_node N`) | no device visible | CPU, one warning: `use_gpu: true but no CUDA device is visible (<why>); training on the CPU (set use_gpu: false to silence this)` |
//! | true | no GPU | devices visible | `cuda:0`, PaddlePaddle's default device (every unbound rank of a job shares it; `comm_backend: auto` then keeps the ring), an error when it cannot be used |
//!
//! The CUDA questions go through [`CudaProbe`] so tests cover every row without a GPU.

use std::fmt;

use ringdet_collective::device::{
    CommBackend, CommBackendChoice, RankCapability, RankInfo, device_key, nccl_probe,
    select_backend,
};
use ringdet_collective::worker_env::{self, BoundDevice};
use tracing::{info, warn};

use crate::trainer::{Replicas, TrainError};

/// Where a rank trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComputeDevice {
    /// The CPU backend (the numerical reference).
    Cpu,
    /// One CUDA device.
    Cuda {
        /// Its ordinal among the devices this process sees (CUDA_VISIBLE_DEVICES order).
        ordinal: usize,
    },
}

impl fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComputeDevice::Cpu => f.write_str("cpu"),
            ComputeDevice::Cuda { ordinal } => write!(f, "cuda:{ordinal}"),
        }
    }
}

/// What the launcher told this rank about devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceEnv {
    /// The device the launcher bound (`None`: no launcher said; a plain `ringdet train`,
    /// torchrun or Slurm).
    pub bound: Option<BoundDevice>,
}

impl DeviceEnv {
    /// Reads the worker environment of this process.
    pub fn from_env(rank: usize) -> Result<DeviceEnv, TrainError> {
        let bound = worker_env::bound_device()
            .map_err(|e| TrainError::Device(format!("rank {rank}: worker environment: {e}")))?;
        Ok(DeviceEnv { bound })
    }
}

/// The CUDA questions the decision asks, answered by the system ([`SystemProbe`]) or by a test.
pub trait CudaProbe {
    /// How many CUDA devices this process sees, or why none can be used (no driver...).
    fn visible(&self) -> Result<usize, String>;
    /// Whether device `ordinal` can train (driver, context, NVRTC), or why not.
    fn usable(&self, ordinal: usize) -> Result<(), String>;
}

/// The real probes of `ringdet_kernels::runtime`: errors, never panics, without a GPU.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemProbe;

impl CudaProbe for SystemProbe {
    fn visible(&self) -> Result<usize, String> {
        ringdet_kernels::runtime::probe::device_count().map_err(|e| e.to_string())
    }
    fn usable(&self, ordinal: usize) -> Result<(), String> {
        ringdet_kernels::runtime::KernelRuntime::get(ordinal)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The decision: the device, and a line to print when `use_gpu: true` falls back to the CPU
/// (a warning) or a launcher's CPU worker takes the default GPU (a note).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceChoice {
    /// Where the rank trains.
    pub device: ComputeDevice,
    /// One line to print as a warning before training starts.
    pub warning: Option<String>,
    /// One line to print as information before training starts.
    pub note: Option<String>,
}

/// Decides rank `rank`'s device (see the module's table). Pure apart from `probe`.
pub fn decide_device(
    use_gpu: bool,
    rank: usize,
    env: &DeviceEnv,
    probe: &dyn CudaProbe,
) -> Result<DeviceChoice, TrainError> {
    let cpu = |warning: String| {
        Ok(DeviceChoice {
            device: ComputeDevice::Cpu,
            warning: Some(warning),
            note: None,
        })
    };
    let cuda = |ordinal, note: Option<String>| {
        Ok(DeviceChoice {
            device: ComputeDevice::Cuda { ordinal },
            warning: None,
            note,
        })
    };
    let none_visible = |why: &str| {
        format!(
            "use_gpu: true but no CUDA device is visible ({why}); training on the CPU (set \
             use_gpu: false to silence this)"
        )
    };
    if !use_gpu {
        return Ok(DeviceChoice {
            device: ComputeDevice::Cpu,
            warning: None,
            note: None,
        });
    }
    match env.bound {
        Some(BoundDevice::Gpu { ordinal, .. }) => match probe.usable(ordinal) {
            Ok(()) => cuda(ordinal, None),
            Err(cause) => Err(TrainError::Device(format!(
                "rank {rank}: --gpus bound CUDA device {ordinal} but it cannot be used: {cause}"
            ))),
        },
        // No GPU bound: PaddlePaddle's default device, 0, when there is one.
        bound @ (None | Some(BoundDevice::Cpu)) => match probe.visible() {
            Ok(0) => cpu(none_visible("the driver lists none")),
            Err(why) => cpu(none_visible(&why)),
            Ok(n) => match probe.usable(0) {
                Ok(()) => cuda(
                    0,
                    (bound == Some(BoundDevice::Cpu)).then(|| {
                        format!(
                            "use_gpu: true and `ringdet launch` bound no GPU to this rank (no \
                             --gpus): training on CUDA device 0, PaddlePaddle's default ({n} \
                             visible; --gpus binds one per rank)"
                        )
                    }),
                ),
                Err(cause) => Err(TrainError::Device(format!(
                    "rank {rank}: use_gpu: true and CUDA device 0 is visible but cannot be \
                     used: {cause} (set use_gpu: false to train on the CPU)"
                ))),
            },
        },
    }
}

/// [`decide_device`], then the warning (if any) and the chosen device logged once.
pub fn resolve_device(
    use_gpu: bool,
    rank: usize,
    env: &DeviceEnv,
    probe: &dyn CudaProbe,
) -> Result<ComputeDevice, TrainError> {
    let choice = decide_device(use_gpu, rank, env, probe)?;
    if let Some(line) = &choice.warning {
        warn!(rank, "{line}");
    }
    if let Some(line) = &choice.note {
        info!(rank, "{line}");
    }
    info!(rank, device = %choice.device, "training device");
    Ok(choice.device)
}

/// The backend for the ranks' gradients, the same on every rank: each rank's [`RankInfo`]
/// (device, whether NCCL loads there, its GPU's key) goes to every rank in one all-gather, then
/// [`select_backend`] decides. No exchange (and no NCCL probe) when the answer cannot depend on
/// it: `comm_backend: ring`, or `use_gpu: false` (every rank reads the same config, so every
/// rank is on the CPU). A CPU rank never loads libnccl.
pub fn select_comm_backend(
    choice: CommBackendChoice,
    use_gpu: bool,
    device: ComputeDevice,
    replicas: &Replicas,
) -> Result<CommBackend, TrainError> {
    let rank = replicas.rank();
    let device_err = |msg: String| TrainError::Device(format!("rank {rank}: {msg}"));
    if choice == CommBackendChoice::Ring {
        return Ok(CommBackend::Ring);
    }
    let (mine, nccl_error) = match device {
        ComputeDevice::Cpu => (RankInfo::CPU, None),
        ComputeDevice::Cuda { ordinal } => {
            let nccl = nccl_probe();
            let capability = match nccl {
                Ok(_) => RankCapability::CudaWithNccl,
                Err(_) => RankCapability::CudaWithoutNccl,
            };
            let info = RankInfo {
                capability,
                device_key: device_key(ordinal).ok(),
            };
            (info, nccl.err())
        }
    };
    let all = if replicas.world() == 1 || !use_gpu {
        vec![mine; replicas.world()]
    } else {
        let gathered =
            replicas
                .all_gather_i64(&mine.to_wire())
                .map_err(|error| TrainError::Comm {
                    rank,
                    what: "agreeing on comm_backend",
                    error,
                })?;
        gathered
            .iter()
            .enumerate()
            .map(|(r, v)| {
                <[i64; 2]>::try_from(v.as_slice())
                    .ok()
                    .and_then(RankInfo::from_wire)
                    .ok_or_else(|| device_err(format!("rank {r} sent {v:?} for its device")))
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    let backend = select_backend(choice, &all, rank, nccl_error.as_deref())
        .map_err(|e| device_err(e.to_string()))?;
    info!(rank, comm_backend = %backend, "gradient exchange backend ({choice} asked)");
    Ok(backend)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A machine with `visible` devices (or `Err` why none), where `broken` ones cannot be used.
    struct Fake {
        visible: Result<usize, String>,
        broken: Vec<usize>,
        asked: Cell<usize>,
    }

    fn machine(visible: Result<usize, &str>, broken: &[usize]) -> Fake {
        Fake {
            visible: visible.map_err(str::to_string),
            broken: broken.to_vec(),
            asked: Cell::new(0),
        }
    }

    impl CudaProbe for Fake {
        fn visible(&self) -> Result<usize, String> {
            self.asked.set(self.asked.get() + 1);
            self.visible.clone()
        }
        fn usable(&self, ordinal: usize) -> Result<(), String> {
            self.asked.set(self.asked.get() + 1);
            let n = self.visible.clone()?;
            if ordinal >= n {
                return Err(format!(
                    "cuda:{ordinal} asked for, but {n} CUDA device(s) are visible"
                ));
            }
            if self.broken.contains(&ordinal) {
                return Err("all CUDA-capable devices are busy or unavailable".into());
            }
            Ok(())
        }
    }

    const NO_DRIVER: &str = "CUDA unavailable: libcuda.so (the NVIDIA driver) was not found";

    fn env(bound: Option<BoundDevice>) -> DeviceEnv {
        DeviceEnv { bound }
    }

    fn gpu(ordinal: usize) -> Option<BoundDevice> {
        Some(BoundDevice::Gpu {
            ordinal,
            var: "FLAGS_selected_gpus",
        })
    }

    fn decide(use_gpu: bool, rank: usize, e: DeviceEnv, m: &Fake) -> Result<DeviceChoice, String> {
        decide_device(use_gpu, rank, &e, m).map_err(|e| e.to_string())
    }

    #[test]
    fn use_gpu_false_is_the_cpu_without_asking_cuda() {
        let m = machine(Ok(8), &[]);
        for e in [env(None), env(gpu(3)), env(Some(BoundDevice::Cpu))] {
            let c = decide(false, 0, e, &m).unwrap();
            assert_eq!(
                (c.device, c.warning, c.note),
                (ComputeDevice::Cpu, None, None)
            );
        }
        assert_eq!(m.asked.get(), 0);
    }

    #[test]
    fn a_bound_gpu_is_used_or_named_with_its_cause() {
        let m = machine(Ok(2), &[0]);
        let c = decide(true, 1, env(gpu(1)), &m).unwrap();
        assert_eq!(
            (c.device, c.warning, c.note),
            (ComputeDevice::Cuda { ordinal: 1 }, None, None)
        );
        let e = decide(true, 0, env(gpu(0)), &m).unwrap_err();
        assert_eq!(
            e,
            "rank 0: --gpus bound CUDA device 0 but it cannot be used: all CUDA-capable devices \
             are busy or unavailable"
        );
        let e = decide(true, 3, env(gpu(5)), &m).unwrap_err();
        assert_eq!(
            e,
            "rank 3: --gpus bound CUDA device 5 but it cannot be used: cuda:5 asked for, but 2 \
             CUDA device(s) are visible"
        );
        let e = decide(true, 1, env(gpu(1)), &machine(Err(NO_DRIVER), &[])).unwrap_err();
        assert_eq!(
            e,
            format!("rank 1: --gpus bound CUDA device 1 but it cannot be used: {NO_DRIVER}")
        );
    }

    #[test]
    fn no_gpu_visible_falls_back_to_the_cpu_with_one_warning() {
        for (m, why) in [
            (machine(Err(NO_DRIVER), &[]), NO_DRIVER),
            (machine(Ok(0), &[]), "the driver lists none"),
        ] {
            for bound in [None, Some(BoundDevice::Cpu)] {
                let c = decide(true, 0, env(bound), &m).unwrap();
                assert_eq!((c.device, c.note), (ComputeDevice::Cpu, None));
                assert_eq!(
                    c.warning.as_deref(),
                    Some(
                        format!(
                            "use_gpu: true but no CUDA device is visible ({why}); training on \
                             the CPU (set use_gpu: false to silence this)"
                        )
                        .as_str()
                    )
                );
            }
        }
    }

    #[test]
    fn unbound_ranks_take_device_0_as_paddle_does() {
        let m = machine(Ok(4), &[]);
        // One process (no launcher): cuda:0, nothing to say.
        let c = decide(true, 0, env(None), &m).unwrap();
        assert_eq!(
            (c.device, c.warning, c.note),
            (ComputeDevice::Cuda { ordinal: 0 }, None, None)
        );
        // A CPU worker of `ringdet launch` (the demo's 2 ranks): cuda:0 too, with a note.
        let c = decide(true, 1, env(Some(BoundDevice::Cpu)), &m).unwrap();
        assert_eq!(
            (c.device, c.warning),
            (ComputeDevice::Cuda { ordinal: 0 }, None)
        );
        let note = c.note.unwrap();
        assert!(note.contains("bound no GPU to this rank (no --gpus): training on CUDA device 0"));
        assert!(
            note.contains("(4 visible; --gpus binds one per rank)"),
            "{note}"
        );
        // Device 0 busy: named, with the way out.
        let e = decide(true, 2, env(None), &machine(Ok(2), &[0])).unwrap_err();
        assert_eq!(
            e,
            "rank 2: use_gpu: true and CUDA device 0 is visible but cannot be used: all \
             CUDA-capable devices are busy or unavailable (set use_gpu: false to train on the CPU)"
        );
    }

    #[test]
    fn the_comm_backend_on_one_cpu_rank() {
        let one = Replicas::single();
        for use_gpu in [false, true] {
            for choice in [CommBackendChoice::Ring, CommBackendChoice::Auto] {
                assert_eq!(
                    select_comm_backend(choice, use_gpu, ComputeDevice::Cpu, &one).unwrap(),
                    CommBackend::Ring
                );
            }
            let e = select_comm_backend(CommBackendChoice::Nccl, use_gpu, ComputeDevice::Cpu, &one)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(
                    "rank 0: comm_backend: nccl cannot be used: rank 0 trains on the CPU"
                ),
                "{e}"
            );
        }
    }

    #[test]
    fn the_comm_backend_on_a_gpu_rank_without_nccl_here() {
        // This machine has no libnccl (nor a GPU: the device key is simply absent).
        if nccl_probe().is_ok() {
            return;
        }
        let one = Replicas::single();
        let cuda = ComputeDevice::Cuda { ordinal: 0 };
        assert_eq!(
            select_comm_backend(CommBackendChoice::Auto, true, cuda, &one).unwrap(),
            CommBackend::Ring
        );
        let e = select_comm_backend(CommBackendChoice::Nccl, true, cuda, &one)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("rank 0: comm_backend: nccl cannot be used: rank 0: NCCL is not available: libnccl.so.2 could not be loaded ("),
            "{e}"
        );
    }
}
