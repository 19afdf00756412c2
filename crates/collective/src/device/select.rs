//! Which backend carries device gradients: `comm_backend: ring | nccl | auto` (the config key,
//! `-o comm_backend=...`), decided from what every rank can do. Pure logic, no CUDA: the
//! trainer gathers each rank's [`RankInfo`] (one small all-gather at start) and every rank runs
//! [`select_backend`] on the same list, so all ranks choose the same backend. NCCL refuses two
//! ranks on one GPU ("Duplicate GPU detected"), so each GPU rank also sends a key of its device
//! (from the device's UUID, [`super::device_key`]) and ranks that share one keep `auto` on the
//! ring.

use std::fmt;
use std::str::FromStr;

/// What the config asks for (`comm_backend`, default `auto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommBackendChoice {
    /// The TCP ring (device buffers staged through pinned host memory on GPU ranks).
    Ring,
    /// NCCL, refused with a clear error where a rank has no GPU or cannot load NCCL.
    Nccl,
    /// NCCL when every rank trains on a GPU and loads NCCL, else the ring.
    #[default]
    Auto,
}

impl CommBackendChoice {
    /// The values the config key takes, as written.
    pub const VALUES: [&'static str; 3] = ["ring", "nccl", "auto"];
}

/// An unknown `comm_backend` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown comm_backend {0:?}: expected ring, nccl or auto")]
pub struct UnknownBackend(pub String);

impl FromStr for CommBackendChoice {
    type Err = UnknownBackend;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ring" => Ok(CommBackendChoice::Ring),
            "nccl" => Ok(CommBackendChoice::Nccl),
            "auto" => Ok(CommBackendChoice::Auto),
            _ => Err(UnknownBackend(s.to_string())),
        }
    }
}

impl fmt::Display for CommBackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CommBackendChoice::Ring => "ring",
            CommBackendChoice::Nccl => "nccl",
            CommBackendChoice::Auto => "auto",
        })
    }
}

/// The backend the ranks use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommBackend {
    /// The TCP ring of this crate.
    Ring,
    /// NCCL on the ranks' CUDA devices.
    Nccl,
}

impl fmt::Display for CommBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CommBackend::Ring => "ring",
            CommBackend::Nccl => "nccl",
        })
    }
}

/// What one rank can use, as exchanged between the ranks ([`RankCapability::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankCapability {
    /// The rank trains on the CPU.
    Cpu,
    /// A CUDA device, but NCCL does not load on this rank.
    CudaWithoutNccl,
    /// A CUDA device and NCCL.
    CudaWithNccl,
}

impl RankCapability {
    /// A rank's capability from its device and whether NCCL loads there (only asked on GPU
    /// ranks, so a CPU rank never opens libnccl).
    pub fn of(on_cuda: bool, nccl_loads: impl FnOnce() -> bool) -> RankCapability {
        match (on_cuda, on_cuda && nccl_loads()) {
            (false, _) => RankCapability::Cpu,
            (true, false) => RankCapability::CudaWithoutNccl,
            (true, true) => RankCapability::CudaWithNccl,
        }
    }

    /// The number sent to the other ranks.
    pub fn code(self) -> i64 {
        match self {
            RankCapability::Cpu => 0,
            RankCapability::CudaWithoutNccl => 1,
            RankCapability::CudaWithNccl => 2,
        }
    }

    /// The capability a number stands for (`None` for anything else).
    pub fn from_code(code: i64) -> Option<RankCapability> {
        match code {
            0 => Some(RankCapability::Cpu),
            1 => Some(RankCapability::CudaWithoutNccl),
            2 => Some(RankCapability::CudaWithNccl),
            _ => None,
        }
    }
}

/// One rank's entry in the exchange: what it can use and, on a GPU, a key of its device (equal
/// keys: the same GPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RankInfo {
    /// What the rank can use.
    pub capability: RankCapability,
    /// Its device's key, when it trains on a GPU and the key could be read.
    pub device_key: Option<i64>,
}

impl RankInfo {
    /// A CPU rank.
    pub const CPU: RankInfo = RankInfo {
        capability: RankCapability::Cpu,
        device_key: None,
    };

    /// The two numbers sent to the other ranks.
    pub fn to_wire(self) -> [i64; 2] {
        [
            self.capability.code() + if self.device_key.is_some() { 8 } else { 0 },
            self.device_key.unwrap_or(0),
        ]
    }

    /// The entry two numbers stand for (`None` for anything else).
    pub fn from_wire(wire: [i64; 2]) -> Option<RankInfo> {
        let has_key = wire[0] & 8 != 0;
        Some(RankInfo {
            capability: RankCapability::from_code(wire[0] & !8)?,
            device_key: has_key.then_some(wire[1]),
        })
    }
}

/// `comm_backend: nccl` where some rank cannot use it; the message names the ranks and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// The backend for `choice` given every rank's entry (`ranks[r]` is rank `r`'s). `my_rank`
/// and `my_nccl_error` (why NCCL does not load here, when it does not) only make the error more
/// precise: every rank decides the same backend from the same list.
///
/// - `ring` → the ring.
/// - `auto` → NCCL when every rank is [`RankCapability::CudaWithNccl`] on a GPU of its own (no
///   two ranks with the same device key), else the ring.
/// - `nccl` → NCCL under the same condition, else an error naming the ranks on the CPU, the
///   ranks where NCCL does not load and the ranks that share a GPU.
pub fn select_backend(
    choice: CommBackendChoice,
    ranks: &[RankInfo],
    my_rank: usize,
    my_nccl_error: Option<&str>,
) -> Result<CommBackend, BackendError> {
    let all_nccl = !ranks.is_empty()
        && ranks
            .iter()
            .all(|c| c.capability == RankCapability::CudaWithNccl);
    let shared = shared_devices(ranks.iter().map(|r| r.device_key));
    let usable = all_nccl && shared.is_empty();
    match choice {
        CommBackendChoice::Ring => Ok(CommBackend::Ring),
        CommBackendChoice::Auto | CommBackendChoice::Nccl if usable => Ok(CommBackend::Nccl),
        CommBackendChoice::Auto => Ok(CommBackend::Ring),
        CommBackendChoice::Nccl => {
            let mut problems = Vec::new();
            let cpu: Vec<String> = ranks
                .iter()
                .enumerate()
                .filter(|(_, c)| c.capability == RankCapability::Cpu)
                .map(|(r, _)| r.to_string())
                .collect();
            if !cpu.is_empty() {
                problems.push(format!(
                    "{} on the CPU (NCCL needs a CUDA device on every rank: use_gpu: true and \
                     --gpus)",
                    ranks_phrase(&cpu, "trains", "train")
                ));
            }
            for (r, c) in ranks.iter().enumerate() {
                if c.capability != RankCapability::CudaWithoutNccl {
                    continue;
                }
                match my_nccl_error.filter(|_| r == my_rank) {
                    Some(why) => problems.push(format!("rank {r}: {why}")),
                    None => problems.push(format!("rank {r} cannot load NCCL (its log says why)")),
                }
            }
            for group in shared {
                problems.push(format!(
                    "ranks {} share one GPU (NCCL needs a GPU of its own for every rank)",
                    group.join(", ")
                ));
            }
            if ranks.is_empty() {
                problems.push("no ranks".into());
            }
            Err(BackendError(format!(
                "comm_backend: nccl cannot be used: {}; use -o comm_backend=ring (or auto)",
                problems.join("; ")
            )))
        }
    }
}

/// Groups of ranks (as text) whose device keys (by rank) are equal.
pub(crate) fn shared_devices(keys: impl Iterator<Item = Option<i64>>) -> Vec<Vec<String>> {
    let mut groups: Vec<(i64, Vec<String>)> = Vec::new();
    for (r, key) in keys.enumerate() {
        let Some(key) = key else { continue };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(r.to_string()),
            None => groups.push((key, vec![r.to_string()])),
        }
    }
    groups
        .into_iter()
        .map(|(_, members)| members)
        .filter(|m| m.len() > 1)
        .collect()
}

fn ranks_phrase(ranks: &[String], one: &str, several: &str) -> String {
    match ranks {
        [r] => format!("rank {r} {one}"),
        _ => format!("ranks {} {several}", ranks.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::RankCapability::{Cpu, CudaWithNccl, CudaWithoutNccl};
    use super::*;

    #[test]
    fn the_choice_parses_and_unknown_values_list_the_three() {
        assert_eq!("ring".parse(), Ok(CommBackendChoice::Ring));
        assert_eq!(" NCCL".parse(), Ok(CommBackendChoice::Nccl));
        assert_eq!("auto".parse(), Ok(CommBackendChoice::Auto));
        assert_eq!(CommBackendChoice::default(), CommBackendChoice::Auto);
        let e = "gloo".parse::<CommBackendChoice>().unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown comm_backend \"gloo\": expected ring, nccl or auto"
        );
        for v in CommBackendChoice::VALUES {
            assert_eq!(v.parse::<CommBackendChoice>().unwrap().to_string(), v);
        }
    }

    #[test]
    fn capability_codes_round_trip_and_cpu_ranks_never_probe_nccl() {
        for c in [Cpu, CudaWithoutNccl, CudaWithNccl] {
            assert_eq!(RankCapability::from_code(c.code()), Some(c));
        }
        assert_eq!(RankCapability::from_code(7), None);
        assert_eq!(
            RankCapability::of(false, || panic!("probed on a CPU rank")),
            Cpu
        );
        assert_eq!(RankCapability::of(true, || false), CudaWithoutNccl);
        assert_eq!(RankCapability::of(true, || true), CudaWithNccl);
    }

    fn on(capability: RankCapability, key: i64) -> RankInfo {
        RankInfo {
            capability,
            device_key: Some(key),
        }
    }

    #[test]
    fn rank_info_round_trips_through_the_wire() {
        for info in [
            RankInfo::CPU,
            on(CudaWithNccl, -5),
            on(CudaWithoutNccl, 0),
            RankInfo {
                capability: CudaWithNccl,
                device_key: None,
            },
        ] {
            assert_eq!(RankInfo::from_wire(info.to_wire()), Some(info));
        }
        assert_eq!(RankInfo::from_wire([5, 0]), None);
    }

    #[test]
    fn ring_is_always_the_ring() {
        for ranks in [
            &[RankInfo::CPU; 2][..],
            &[on(CudaWithNccl, 1), on(CudaWithNccl, 2)],
            &[],
        ] {
            assert_eq!(
                select_backend(CommBackendChoice::Ring, ranks, 0, None),
                Ok(CommBackend::Ring)
            );
        }
    }

    #[test]
    fn auto_is_nccl_only_when_every_rank_has_its_own_gpu_and_nccl() {
        let auto =
            |ranks: &[RankInfo]| select_backend(CommBackendChoice::Auto, ranks, 0, None).unwrap();
        assert_eq!(
            auto(&[on(CudaWithNccl, 1), on(CudaWithNccl, 2)]),
            CommBackend::Nccl
        );
        assert_eq!(auto(&[on(CudaWithNccl, 1)]), CommBackend::Nccl);
        assert_eq!(
            auto(&[on(CudaWithNccl, 1), on(CudaWithoutNccl, 2)]),
            CommBackend::Ring
        );
        assert_eq!(
            auto(&[on(CudaWithNccl, 1), RankInfo::CPU]),
            CommBackend::Ring
        );
        assert_eq!(auto(&[RankInfo::CPU; 2]), CommBackend::Ring);
        assert_eq!(auto(&[]), CommBackend::Ring);
        // Two ranks on one GPU (the GPU check's 2-ranks-on-one-device run): the ring.
        assert_eq!(
            auto(&[on(CudaWithNccl, 7), on(CudaWithNccl, 7)]),
            CommBackend::Ring
        );
    }

    #[test]
    fn forced_nccl_names_every_rank_that_cannot() {
        assert_eq!(
            select_backend(
                CommBackendChoice::Nccl,
                &[
                    on(CudaWithNccl, 1),
                    on(CudaWithNccl, 2),
                    on(CudaWithNccl, 3)
                ],
                1,
                None
            ),
            Ok(CommBackend::Nccl)
        );
        let e = select_backend(CommBackendChoice::Nccl, &[RankInfo::CPU], 0, None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "comm_backend: nccl cannot be used: rank 0 trains on the CPU (NCCL needs a CUDA \
             device on every rank: use_gpu: true and --gpus); use -o comm_backend=ring (or auto)"
        );
        let why = "NCCL is not available: libnccl.so.2 could not be loaded (no such file)";
        let ranks = [
            on(CudaWithNccl, 1),
            on(CudaWithoutNccl, 2),
            RankInfo::CPU,
            RankInfo::CPU,
            on(CudaWithoutNccl, 3),
        ];
        let e = select_backend(CommBackendChoice::Nccl, &ranks, 1, Some(why))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ranks 2, 3 train on the CPU"), "{e}");
        assert!(e.contains(&format!("rank 1: {why}")), "{e}");
        assert!(
            e.contains("rank 4 cannot load NCCL (its log says why)"),
            "{e}"
        );
        assert!(e.ends_with("use -o comm_backend=ring (or auto)"), "{e}");
        // The same decision on a rank that can: its error names the others.
        let e = select_backend(CommBackendChoice::Nccl, &ranks, 0, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("rank 1 cannot load NCCL"), "{e}");
        let shared = [
            on(CudaWithNccl, 4),
            on(CudaWithNccl, 9),
            on(CudaWithNccl, 4),
            on(CudaWithNccl, 4),
        ];
        let e = select_backend(CommBackendChoice::Nccl, &shared, 0, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ranks 0, 2, 3 share one GPU"), "{e}");
    }
}
