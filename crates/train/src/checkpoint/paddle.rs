//! `-r` from a checkpoint PaddleDetection 2.6.0 wrote, so a run started there continues here.
//!
//! PaddleDetection's `save_model` (`ppdet/utils/checkpoint.py`) writes, for `output/<cfg>/<name>`:
//!
//! | file | holds |
//! |---|---|
//! | `<name>.pdparams` | the model's state dict; with EMA on, the EMA's bias-corrected weights (`ModelEMA.apply()`) |
//! | `<name>.pdema` | only with EMA on: the raw model's state dict (the two are exchanged on save) |
//! | `<name>.pdopt` | `optimizer.state_dict()`: a Momentum velocity `<paddle name>_velocity_0` per trainable parameter, `LR_Scheduler` (`last_epoch` = scheduler steps done), plus `last_epoch` = epochs done |
//!
//! Each state dict carries `StructuredToParameterName@@`, the table from state-dict names
//! (`backbone.stem.conv1.conv.weight`) to Paddle's parameter names (`conv2d_0.w_0`) that the
//! velocities are keyed by. Its `load_weight` resumes the raw weights from `.pdema`, puts the
//! `.pdparams` values into the EMA as they are with its step count set to the scheduler's
//! `last_epoch`, restores the optimizer and continues at epoch `last_epoch`; [`resume`] does the
//! same. PaddleDetection saves no sampler position, `best_ap` or RNG state: the run continues at
//! the start of epoch `last_epoch` with this run's seed and no best AP, and the report says so.
//! A checkpoint without its `.pdopt` is refused (it holds no epoch and no velocities: use the
//! `.pdparams` as `weights`/`pretrain_weights` to start from its weights instead).

use std::path::{Path, PathBuf};

use ringdet_detect::DetectError;
use ringdet_detect::arch::{Arch, TensorKind};
use ringdet_detect::state::ModelState;
use ringdet_detect::train::ema::Ema;
use ringdet_detect::train::optimizer::Optimizer;
use ringdet_tensor::DType;
use ringdet_tensor::pdparams::PdParams;

use super::files::{corrupt, tensor_err};
use super::{
    Checkpoint, CheckpointError, DataState, Fingerprint, Result, TrainSnapshot, TrainerState,
};

/// Paddle's key of the state-dict-name -> parameter-name table.
const NAME_TABLE: &str = "StructuredToParameterName@@";

/// A resumed PaddleDetection checkpoint and the one line that says what it gave and lacked.
#[derive(Debug)]
pub struct PaddleResume {
    /// What the trainer continues from.
    pub snapshot: TrainSnapshot,
    /// One line: where weights, EMA and velocities came from, the epoch and step, and what
    /// PaddleDetection does not save.
    pub report: String,
}

/// Whether a `-r` argument names a PaddleDetection checkpoint: it ends in `.pdparams`, `.pdopt`
/// or `.pdema`, or `<arg>.pdparams` exists and `<arg>.state.json` (ringdet's own) does not.
pub fn is_paddle_checkpoint(arg: &Path) -> bool {
    if ringdet_tensor::pdparams::is_paddle_path(arg) {
        return true;
    }
    let with = |ext: &str| {
        let mut s = arg.as_os_str().to_os_string();
        s.push(ext);
        PathBuf::from(s)
    };
    with(".pdparams").exists() && !with(".state.json").exists()
}

/// Loads the PaddleDetection checkpoint `arg` names for a model of `arch`: raw weights, EMA,
/// Momentum velocity per parameter, epoch and step. `optimizer` is this run's, which must be
/// Momentum (its momentum and decay settings are kept, its velocity replaced); `ema` this run's fresh EMA, `None` when
/// the recipe has none. `config_name` and `now` become the snapshot's (PaddleDetection records
/// neither, so nothing is compared).
pub fn resume(
    arg: impl AsRef<Path>,
    arch: &Arch,
    config_name: &str,
    now: &Fingerprint,
    optimizer: &Optimizer,
    ema: Option<&Ema>,
) -> Result<PaddleResume> {
    let c = Checkpoint::from_resume_arg(arg)?;
    let Some(sgd) = optimizer.as_momentum() else {
        return Err(CheckpointError::Incompatible {
            path: c.dir.join(&c.name),
            differences: vec![format!(
                "OptimizerBuilder.optimizer.type: this config trains with {}, and a \
                 PaddleDetection checkpoint is resumed into Momentum only",
                optimizer.name()
            )],
        });
    };
    let path = |ext: &str| c.dir.join(format!("{}.{ext}", c.name));
    let (params_path, ema_path, opt_path) = (path("pdparams"), path("pdema"), path("pdopt"));
    if !params_path.exists() {
        return Err(CheckpointError::Incomplete {
            path: params_path,
            msg: "missing: no PaddleDetection checkpoint of this name".into(),
        });
    }
    if !opt_path.exists() {
        return Err(CheckpointError::Incomplete {
            path: opt_path,
            msg: format!(
                "missing: without the optimizer state there is no epoch and no velocity to resume \
                 from; to start from these weights instead, pass -o pretrain_weights={}",
                params_path.display()
            ),
        });
    }
    let open = |p: &Path| PdParams::open(p).map_err(|e| tensor_err(p, e));
    let pdparams = open(&params_path)?;
    let pdema = if ema_path.exists() {
        Some(open(&ema_path)?)
    } else {
        None
    };
    let pdopt = open(&opt_path)?;

    // Raw weights: `.pdema` when PaddleDetection ran with EMA, else `.pdparams`.
    let raw = pdema.as_ref().unwrap_or(&pdparams);
    let model = load_model(raw, arch)?;

    let int = |key: &str| -> Result<u64> {
        let v = pdopt
            .int(key)
            .ok_or_else(|| corrupt(&opt_path, format!("no integer `{key}`")))?;
        u64::try_from(v).map_err(|_| corrupt(&opt_path, format!("`{key}` is {v}")))
    };
    let epoch = int("last_epoch")?;
    let step = int("LR_Scheduler/last_epoch")?;

    // Velocities, by Paddle parameter name through the files' name tables.
    let layout = &model.layout;
    let mut velocity = vec![0f32; layout.num_params()];
    let mut used = 0usize;
    for slot in layout.state_dict_slots() {
        if slot.spec.kind != TensorKind::Param {
            continue;
        }
        let name = &slot.spec.name;
        let candidates: Vec<String> = [pdema.as_ref(), Some(&pdparams)]
            .into_iter()
            .flatten()
            .filter_map(|f| f.str(&format!("{NAME_TABLE}/{name}")))
            .flat_map(|p| [p.to_string(), strip_deepcopy(p).to_string()])
            .collect();
        if candidates.is_empty() {
            return Err(corrupt(
                raw.path(),
                format!("`{NAME_TABLE}` has no entry for parameter `{name}`"),
            ));
        }
        let Some((vname, t)) = candidates.iter().find_map(|p| {
            let v = format!("{p}_velocity_0");
            pdopt.tensor(&v).map(|t| (v, t))
        }) else {
            return Err(corrupt(
                &opt_path,
                format!(
                    "no Momentum velocity for parameter `{name}` (looked for {})",
                    candidates
                        .iter()
                        .map(|p| format!("`{p}_velocity_0`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        if t.dtype() != DType::F32 || t.shape() != slot.spec.shape.as_slice() {
            return Err(corrupt(
                &opt_path,
                format!(
                    "tensor `{vname}` (velocity of `{name}`) is {:?} {:?}, expected F32 {:?}",
                    t.dtype(),
                    t.shape(),
                    slot.spec.shape
                ),
            ));
        }
        let v = t.to_vec::<f32>().map_err(|e| tensor_err(&opt_path, e))?;
        velocity[slot.range()].copy_from_slice(&v);
        used += 1;
    }
    let in_file = pdopt.names().filter(|n| n.ends_with("_velocity_0")).count();
    let mut sgd = sgd.clone();
    sgd.restore_velocity(velocity)
        .map_err(|e| corrupt(&opt_path, e.to_string()))?;

    let mut notes = Vec::new();
    if in_file > used {
        notes.push(format!(
            "{} velocities of parameters this model lacks unused",
            in_file - used
        ));
    }
    let ema = match (ema, &pdema) {
        (Some(template), Some(_)) => {
            // As PaddleDetection's `ModelEMA.resume`: the saved (corrected) EMA weights become
            // the EMA state, its step the scheduler's step.
            let averaged = load_model(&pdparams, arch)?;
            let mut e = Ema::new(template.decay, layout.num_params(), layout.num_stats());
            let last = if step == 0 { 0.0 } else { e.decay_at(step - 1) };
            e.restore(averaged.params, averaged.stats, step, last)
                .map_err(|err| corrupt(&params_path, err.to_string()))?;
            notes.push(format!(
                "EMA from {} after {step} updates",
                file_name(&params_path)
            ));
            Some(e)
        }
        (Some(template), None) => {
            notes.push(format!(
                "no {}: PaddleDetection ran without EMA, so the EMA starts afresh (its first \
                 update takes the weights)",
                file_name(&ema_path)
            ));
            Some(Ema::new(
                template.decay,
                layout.num_params(),
                layout.num_stats(),
            ))
        }
        (None, Some(_)) => {
            notes.push(format!(
                "this config has no EMA: the EMA weights in {} unused",
                file_name(&params_path)
            ));
            None
        }
        (None, None) => None,
    };
    let seed = now
        .get("seed")
        .and_then(|s| s.parse().ok())
        .unwrap_or_default();
    let report = format!(
        "PaddleDetection checkpoint {}: weights from {}, {used} Momentum velocities, epoch \
         {epoch}, step {step}{}; not in it, so not restored: sampler position (continuing at the \
         start of epoch {epoch}), best_ap (none yet), RNG state (this run's seed)",
        c.dir.join(&c.name).display(),
        file_name(raw.path()),
        notes.iter().map(|n| format!("; {n}")).collect::<String>()
    );
    tracing::info!(checkpoint = %c.dir.join(&c.name).display(), epoch, step, "loaded PaddleDetection checkpoint");
    Ok(PaddleResume {
        snapshot: TrainSnapshot {
            model,
            optimizer: Optimizer::Momentum(sgd),
            ema,
            state: TrainerState {
                config_name: config_name.to_string(),
                epoch,
                global_step: step,
                best_ap: None,
                best_epoch: None,
                data: DataState {
                    seed,
                    sampler_epoch: u32::try_from(epoch).unwrap_or(u32::MAX),
                    next_batch: 0,
                    rng: Vec::new(),
                },
                fingerprint: now.clone(),
            },
        },
        report,
    })
}

/// What [`save_paddle`] wrote.
#[derive(Debug)]
pub struct PaddleSave {
    /// `<out>.pdparams`, `<out>.pdema` (with EMA), `<out>.pdopt`.
    pub files: Vec<PathBuf>,
    /// Velocities written.
    pub velocities: usize,
    /// The epoch (`last_epoch`) and step (`LR_Scheduler.last_epoch`) written.
    pub epoch: u64,
    /// See `epoch`.
    pub step: u64,
}

/// Writes ringdet checkpoint `ckpt` (of a model of `arch`) as a PaddleDetection checkpoint at
/// `out` (`out.pdparams`, `out.pdema` when it has an EMA, `out.pdopt`), as `save_model` does,
/// so PaddleDetection's `-r out` continues from it: `.pdparams` the bias-corrected EMA weights
/// (the raw ones without EMA), `.pdema` the raw weights, `.pdopt` each velocity as
/// `<paddle name>_velocity_0`, `LR_Scheduler: {last_epoch: step, last_lr: 0.0}` (Paddle
/// recomputes `last_lr` at its next scheduler step) and `last_epoch: epoch`. Paddle's parameter
/// names are not ringdet's to invent: they come from `names`, any file `paddle.save` wrote for
/// the same model (a PaddleDetection checkpoint's `.pdparams` or `.pdema`, released weights),
/// through its `StructuredToParameterName@@` table.
pub fn save_paddle(
    ckpt: &Checkpoint,
    arch: &Arch,
    names: &PdParams,
    out: &Path,
) -> Result<PaddleSave> {
    let snap = ckpt.load(arch)?;
    let model = &snap.model;
    let Optimizer::Momentum(sgd) = &snap.optimizer else {
        return Err(CheckpointError::Invalid {
            path: ckpt.opt_path(),
            msg: format!(
                "the checkpoint's optimizer is {}; only a Momentum checkpoint converts to \
                 PaddleDetection's `.pdopt` (its velocities)",
                snap.optimizer.name()
            ),
        });
    };
    let path = |ext: &str| {
        let mut s = out.as_os_str().to_os_string();
        s.push(format!(".{ext}"));
        PathBuf::from(s)
    };
    // Paddle's parameter name of every state-dict entry, as `paddle.save` writes beside it.
    let mut table = Vec::new();
    for slot in model.layout.state_dict_slots() {
        let name = &slot.spec.name;
        let p = names.str(&format!("{NAME_TABLE}/{name}")).ok_or_else(|| {
            corrupt(
                names.path(),
                format!("`{NAME_TABLE}` has no entry for `{name}`"),
            )
        })?;
        table.push((name.clone(), strip_deepcopy(p).to_string()));
    }
    use ringdet_tensor::pdparams::Extra;
    let table_extra = [(
        NAME_TABLE,
        Extra::Dict(
            table
                .iter()
                .map(|(n, p)| (n.clone(), Extra::Str(p.clone())))
                .collect(),
        ),
    )];
    let write = |p: &Path, m: &ModelState| -> Result<()> {
        let tensors = m
            .export()
            .into_iter()
            .map(|(n, shape, v)| {
                ringdet_tensor::Tensor::from_vec(v, &shape)
                    .map(|t| (n, t))
                    .map_err(|e| tensor_err(p, e))
            })
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<(&str, &ringdet_tensor::Tensor)> =
            tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        ringdet_tensor::pdparams::save_with(p, &refs, &table_extra).map_err(|e| tensor_err(p, e))
    };
    let mut files = Vec::new();
    let averaged = match &snap.ema {
        Some(e) => e
            .corrected()
            .map_err(|err| corrupt(&ckpt.opt_path(), err.to_string()))?,
        None => None,
    };
    if snap.ema.is_some() {
        let mut avg = model.clone();
        if let Some((p, s)) = averaged {
            avg.params = p;
            avg.stats = s;
        }
        write(&path("pdparams"), &avg)?;
        write(&path("pdema"), model)?;
        files.push(path("pdparams"));
        files.push(path("pdema"));
    } else {
        write(&path("pdparams"), model)?;
        files.push(path("pdparams"));
    }
    let opt_path = path("pdopt");
    let mut velocities = Vec::new();
    for (slot, (_, p)) in model.layout.state_dict_slots().zip(&table) {
        if slot.spec.kind != TensorKind::Param {
            continue;
        }
        let t =
            ringdet_tensor::Tensor::from_vec(sgd.velocity[slot.range()].to_vec(), &slot.spec.shape)
                .map_err(|e| tensor_err(&opt_path, e))?;
        velocities.push((format!("{p}_velocity_0"), t));
    }
    let refs: Vec<(&str, &ringdet_tensor::Tensor)> =
        velocities.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let (epoch, step) = (snap.state.epoch, snap.state.global_step);
    let as_i64 = |v: u64, what: &str| {
        i64::try_from(v).map_err(|_| corrupt(&ckpt.state_path(), format!("{what} {v} too large")))
    };
    let extras = [
        (
            "LR_Scheduler",
            Extra::Dict(vec![
                (
                    "last_epoch".into(),
                    Extra::Int(as_i64(step, "global_step")?),
                ),
                ("last_lr".into(), Extra::Float(0.0)),
            ]),
        ),
        ("last_epoch", Extra::Int(as_i64(epoch, "epoch")?)),
    ];
    ringdet_tensor::pdparams::save_with(&opt_path, &refs, &extras)
        .map_err(|e| tensor_err(&opt_path, e))?;
    files.push(opt_path);
    Ok(PaddleSave {
        files,
        velocities: velocities.len(),
        epoch,
        step,
    })
}

/// Every state-dict tensor of `arch` from `file`, checked for dtype and shape.
fn load_model(file: &PdParams, arch: &Arch) -> Result<ModelState> {
    let path = file.path();
    let mut model = ModelState::zeros(arch).map_err(|e| corrupt(path, e.to_string()))?;
    model
        .load_with(|name| {
            let Some(t) = file.tensor(name) else {
                return Ok(None);
            };
            if t.dtype() != DType::F32 {
                return Err(DetectError::Input(format!(
                    "tensor `{name}` is {:?}, expected F32",
                    t.dtype()
                )));
            }
            let v = t
                .to_vec::<f32>()
                .map_err(|e| DetectError::Input(format!("tensor `{name}`: {e}")))?;
            Ok(Some((t.shape().to_vec(), v)))
        })
        .map_err(|e| match e {
            DetectError::MissingTensor(n) => corrupt(path, format!("missing tensor `{n}`")),
            DetectError::Input(m) => corrupt(path, m),
            other => corrupt(path, other.to_string()),
        })?;
    Ok(model)
}

/// `conv2d_0.w_0_deepcopy_3` -> `conv2d_0.w_0`: the names of a deep-copied model, as in the
/// `.pdema` table PaddleDetection 2.6.0 writes.
fn strip_deepcopy(name: &str) -> &str {
    match name.rfind("_deepcopy_") {
        Some(i) if name[i + 10..].bytes().all(|b| b.is_ascii_digit()) => &name[..i],
        _ => name,
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::strip_deepcopy;

    #[test]
    fn deepcopy_suffix() {
        assert_eq!(strip_deepcopy("conv2d_0.w_0_deepcopy_12"), "conv2d_0.w_0");
        assert_eq!(strip_deepcopy("conv2d_0.w_0"), "conv2d_0.w_0");
        assert_eq!(strip_deepcopy("a_deepcopy_x"), "a_deepcopy_x");
    }
}
