//! Checkpoints and exact resume, laid out as PaddleDetection users expect.
//!
//! In `output/<config name>/`, a checkpoint named `<name>` (an epoch number such as `0`,
//! `model_final`, `best_model`) is four files:
//!
//! | file | holds |
//! |---|---|
//! | `<name>.safetensors` | the weights as PaddleDetection saves them, under its state-dict names: the EMA weights (bias-corrected) when EMA is on, else the raw ones |
//! | `<name>.raw.safetensors` | the raw weights and BN statistics (the full state dict) |
//! | `<name>.opt.safetensors` | the optimizer: SGD velocity, decay mask, momentum, L2 (or AdamW moments, mask, constants, steps); EMA buffers, decay, update count, last decay |
//! | `<name>.state.json` | the trainer: epoch, global step, `best_ap`, data order and RNG state, config name, recipe fingerprint, and the size and SHA-256 of the three files above |
//!
//! Every file is written atomically (a temporary sibling, fsync, rename, fsync of the folder).
//! A save first removes the old `<name>.state.json`, writes the three tensor files and commits
//! the set by writing `<name>.state.json` last; each tensor file carries the save's id and step
//! in its metadata. A crash mid-save therefore leaves other checkpoints untouched and this one
//! without a `.state.json` (refused as never committed) or with companions of another save
//! (refused by name), never a half set that loads.
//!
//! `-r output/<config name>/<name>` names a checkpoint ([`Checkpoint::from_resume_arg`]);
//! [`resume`] loads it and refuses a run whose config name or [`Fingerprint`] differs, naming
//! every difference. Nothing is ever deleted ([`list`] only lists), as in PaddleDetection.

mod error;
mod files;
mod fingerprint;
pub mod paddle;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ringdet_detect::DetectError;
use ringdet_detect::arch::{Arch, TensorKind};
use ringdet_detect::state::ModelState;
use ringdet_detect::train::adamw::AdamW;
use ringdet_detect::train::ema::Ema;
use ringdet_detect::train::optimizer::Optimizer;
use ringdet_detect::train::sgd::Sgd;
use ringdet_tensor::{DType, Tensor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use error::{CheckpointError, Result};
pub use fingerprint::Fingerprint;

use files::{FORMAT, FileRecord, corrupt, io};

/// Where the loader is in the data and what seeds its random draws, as plain integers.
///
/// The sampler holds no running state: epoch `e`'s order is `RandomState(e)`'s shuffle, and every
/// augmentation draw is keyed by `(seed, epoch, rank, batch, slot)`; so the epoch, the next batch
/// and the seed restore both exactly. `rng` carries the words of any other generator the trainer
/// keeps running (empty when there is none).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataState {
    /// The loader's augmentation seed (`LoaderConfig::seed`).
    pub seed: u64,
    /// The sampler epoch the next batch comes from.
    pub sampler_epoch: u32,
    /// The index, within that epoch, of the next batch to train on (0 at an epoch boundary).
    pub next_batch: u64,
    /// State words of any further generator, in the trainer's order.
    pub rng: Vec<u64>,
}

/// The trainer's counters and records.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainerState {
    /// Config name (`output/<config name>/`).
    pub config_name: String,
    /// Epochs completed: the epoch to run next.
    pub epoch: u64,
    /// Optimizer steps done: the iteration the LR schedule is at.
    pub global_step: u64,
    /// Best COCO AP seen so far by eval during training.
    pub best_ap: Option<f64>,
    /// The epoch that reached `best_ap`.
    pub best_epoch: Option<u64>,
    /// Data order and random state.
    pub data: DataState,
    /// The settings a resuming run must share.
    pub fingerprint: Fingerprint,
}

/// Everything a save reads, borrowed from the trainer.
#[derive(Clone, Copy, Debug)]
pub struct SnapshotRef<'a> {
    /// The live model: raw parameters, BN statistics, the frozen projection.
    pub model: &'a ModelState,
    /// The optimizer.
    pub optimizer: &'a Optimizer,
    /// The model EMA when the recipe uses one.
    pub ema: Option<&'a Ema>,
    /// Counters, records, data state and fingerprint.
    pub state: &'a TrainerState,
}

/// Everything a load restores: the trainer continues from it bit for bit. The gradient buffer
/// is zero.
#[derive(Clone, Debug)]
pub struct TrainSnapshot {
    /// Raw parameters, BN statistics and the frozen projection.
    pub model: ModelState,
    /// The optimizer, its state (velocity or moments) included.
    pub optimizer: Optimizer,
    /// The EMA when the checkpoint has one.
    pub ema: Option<Ema>,
    /// Counters, records, data state and fingerprint.
    pub state: TrainerState,
}

impl TrainSnapshot {
    /// A borrowed view, for saving.
    pub fn as_ref(&self) -> SnapshotRef<'_> {
        SnapshotRef {
            model: &self.model,
            optimizer: &self.optimizer,
            ema: self.ema.as_ref(),
            state: &self.state,
        }
    }
}

/// The `.state.json` as written.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: String,
    name: String,
    checkpoint_id: String,
    config_name: String,
    epoch: u64,
    global_step: u64,
    /// Exact (Rust round-trip notation).
    best_ap: Option<String>,
    best_epoch: Option<u64>,
    data: DataState,
    /// Whether the opt file holds an EMA (and the weights file its corrected weights).
    ema: bool,
    fingerprint: Fingerprint,
    /// weights, raw, opt — in that order.
    files: Vec<FileRecord>,
}

const ROLES: [&str; 3] = ["weights", "raw", "opt"];

/// One checkpoint: a folder and a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The folder (`output/<config name>`).
    pub dir: PathBuf,
    /// The name (`12`, `model_final`, `best_model`).
    pub name: String,
}

impl Checkpoint {
    /// The checkpoint `name` in `dir`. Refuses names that are empty, hidden, hold a path
    /// separator, or end in `.raw`/`.opt` (they would collide with a companion).
    pub fn new(dir: impl Into<PathBuf>, name: &str) -> Result<Self> {
        let bad = |msg: &str| {
            Err(CheckpointError::BadName {
                name: name.to_string(),
                msg: msg.to_string(),
            })
        };
        if name.is_empty() || name.starts_with('.') {
            return bad("empty or starts with '.'");
        }
        if name.contains(['/', '\\']) {
            return bad("holds a path separator");
        }
        if name.ends_with(".raw") || name.ends_with(".opt") {
            return bad("ends in .raw or .opt, the companions' suffixes");
        }
        Ok(Self {
            dir: dir.into(),
            name: name.to_string(),
        })
    }

    /// The checkpoint a `-r` argument names: `output/<config>/<name>`, with or without one of
    /// the checkpoint's extensions (`.safetensors`, `.state.json`, `.pdparams`, …).
    pub fn from_resume_arg(arg: impl AsRef<Path>) -> Result<Self> {
        let arg = arg.as_ref();
        let text = arg.to_string_lossy();
        let file = arg
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .ok_or_else(|| CheckpointError::BadName {
                name: text.to_string(),
                msg: "names no file".into(),
            })?;
        let name = [
            ".state.json",
            ".raw.safetensors",
            ".opt.safetensors",
            ".safetensors",
            ".pdparams",
            ".pdopt",
            ".pdema",
        ]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))
        .unwrap_or(&file);
        let dir = match arg.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Self::new(dir, name)
    }

    fn file(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.name)
    }

    /// `<name>.safetensors`: the weights as PaddleDetection saves them.
    pub fn weights_path(&self) -> PathBuf {
        self.dir.join(self.file(".safetensors"))
    }
    /// `<name>.raw.safetensors`: raw weights and BN statistics.
    pub fn raw_path(&self) -> PathBuf {
        self.dir.join(self.file(".raw.safetensors"))
    }
    /// `<name>.opt.safetensors`: optimizer and EMA state.
    pub fn opt_path(&self) -> PathBuf {
        self.dir.join(self.file(".opt.safetensors"))
    }
    /// `<name>.state.json`: the trainer state that commits the set.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join(self.file(".state.json"))
    }

    /// Whether the set is committed (its `.state.json` exists; [`load`](Self::load) checks the
    /// rest).
    pub fn is_committed(&self) -> bool {
        self.state_path().is_file()
    }

    /// Saves `snap` under this name, replacing a previous save of the same name (see the module
    /// docs for the order of writes).
    pub fn save(&self, snap: SnapshotRef<'_>) -> Result<()> {
        check_lengths(self, &snap)?;
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let state_path = self.state_path();
        // Un-commit the old set first: from here until the new .state.json lands, this name
        // does not load.
        match std::fs::remove_file(&state_path) {
            Ok(()) => files::sync_dir(&self.dir)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&state_path)(e)),
        }
        let st = snap.state;
        let id = new_id(&self.name, st.global_step);
        let step = st.global_step;

        let weights_path = self.weights_path();
        let corrected = match snap.ema {
            Some(e) => e.corrected().map_err(|e| detect_err(&weights_path, e))?,
            None => None,
        };
        let (wp, ws) = match &corrected {
            Some((p, s)) => (p.as_slice(), s.as_slice()),
            None => (snap.model.params.as_slice(), snap.model.stats.as_slice()),
        };
        let weights = state_dict(&weights_path, snap.model, wp, ws)?;
        let raw_path = self.raw_path();
        let raw = state_dict(&raw_path, snap.model, &snap.model.params, &snap.model.stats)?;
        let opt = opt_tensors(&self.opt_path(), snap.optimizer, snap.ema)?;

        let mut records = Vec::with_capacity(3);
        for (role, suffix, tensors) in [
            ("weights", ".safetensors", weights),
            ("raw", ".raw.safetensors", raw),
            ("opt", ".opt.safetensors", opt),
        ] {
            records.push(files::write_tensors(
                &self.dir,
                &self.file(suffix),
                role,
                &id,
                step,
                &tensors,
            )?);
        }
        let state = StateFile {
            format: FORMAT.to_string(),
            name: self.name.clone(),
            checkpoint_id: id,
            config_name: st.config_name.clone(),
            epoch: st.epoch,
            global_step: st.global_step,
            best_ap: st.best_ap.map(|a| format!("{a:?}")),
            best_epoch: st.best_epoch,
            data: st.data.clone(),
            ema: snap.ema.is_some(),
            fingerprint: st.fingerprint.clone(),
            files: records,
        };
        let json = serde_json::to_vec_pretty(&state)
            .map_err(|e| corrupt(&state_path, format!("cannot encode: {e}")))?;
        ringdet_tensor::safetensors::atomic_write(&state_path, |w| {
            std::io::Write::write_all(w, &json)
        })
        .map_err(|e| files::tensor_err(&state_path, e))?;
        // Debug only: the trainer prints the one user-facing "saved checkpoint" line.
        tracing::debug!(
            checkpoint = %self.dir.join(&self.name).display(),
            epoch = st.epoch,
            step = st.global_step,
            ema = snap.ema.is_some(),
            "saved checkpoint"
        );
        Ok(())
    }

    /// Loads and checks the whole set for a model of `arch`: the `.state.json`, then each
    /// companion's size, digest and save id, then every tensor's dtype and shape.
    pub fn load(&self, arch: &Arch) -> Result<TrainSnapshot> {
        let state_path = self.state_path();
        let text = match std::fs::read(&state_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let msg = match (self.weights_path().exists(), self.raw_path().exists()) {
                    (_, true) => "missing: the set was never committed (a crash during its save?)",
                    (true, false) => {
                        "missing, and so are the companions: only weights (pretrained or \
                         exported), nothing to resume from"
                    }
                    (false, false) => "missing: no checkpoint of this name",
                };
                return Err(CheckpointError::Incomplete {
                    path: state_path,
                    msg: msg.into(),
                });
            }
            Err(e) => return Err(io(&state_path)(e)),
        };
        let sf: StateFile = serde_json::from_slice(&text)
            .map_err(|e| corrupt(&state_path, format!("not a checkpoint state: {e}")))?;
        if sf.format != FORMAT {
            return Err(corrupt(
                &state_path,
                format!("field `format` is {:?}, expected {FORMAT:?}", sf.format),
            ));
        }
        if sf.name != self.name {
            return Err(corrupt(
                &state_path,
                format!("field `name` is {:?}, expected {:?}", sf.name, self.name),
            ));
        }
        let best_ap = sf
            .best_ap
            .as_deref()
            .map(|s| {
                s.parse::<f64>()
                    .map_err(|_| corrupt(&state_path, format!("field `best_ap`: {s:?}")))
            })
            .transpose()?;
        let expect_files: Vec<String> = [".safetensors", ".raw.safetensors", ".opt.safetensors"]
            .iter()
            .map(|s| self.file(s))
            .collect();
        let listed: Vec<&str> = sf.files.iter().map(|r| r.file.as_str()).collect();
        if listed != expect_files {
            return Err(corrupt(
                &state_path,
                format!("field `files` lists {listed:?}, expected {expect_files:?}"),
            ));
        }
        let mut opened = Vec::with_capacity(3);
        for (record, role) in sf.files.iter().zip(ROLES) {
            let path = files::verify(&self.dir, record, &state_path)?;
            opened.push(files::open_companion(
                &path,
                role,
                &sf.checkpoint_id,
                sf.global_step,
            )?);
        }
        let (raw, opt) = (&opened[1], &opened[2]);

        let mut model = ModelState::zeros(arch).map_err(|e| detect_err(raw.path(), e))?;
        model
            .load_with(|name| {
                let Some(info) = raw.info(name) else {
                    return Ok(None);
                };
                let shape = info.shape.clone();
                files::read::<f32>(raw, name, DType::F32, &shape)
                    .map(|v| Some((shape, v)))
                    .map_err(|e| DetectError::Input(e.to_string()))
            })
            .map_err(|e| match e {
                DetectError::MissingTensor(n) => {
                    corrupt(raw.path(), format!("missing tensor `{n}`"))
                }
                DetectError::Input(m) => corrupt(raw.path(), m),
                other => detect_err(raw.path(), other),
            })?;

        let (np, ns) = (model.layout.num_params(), model.layout.num_stats());
        let scalar =
            |name: &str| -> Result<f64> { Ok(files::read::<f64>(opt, name, DType::F64, &[1])?[0]) };
        let optimizer = if opt.info("adamw.moment1").is_some() {
            let mut a = AdamW::paddle_default(&model.layout);
            a.beta1 = scalar("adamw.beta1")?;
            a.beta2 = scalar("adamw.beta2")?;
            a.epsilon = scalar("adamw.epsilon")?;
            a.weight_decay = scalar("adamw.weight_decay")?;
            a.decay_mask = files::read::<u8>(opt, "adamw.decay_mask", DType::U8, &[np])?;
            let steps = files::read::<i64>(opt, "adamw.steps", DType::I64, &[1])?[0];
            let steps = u64::try_from(steps)
                .map_err(|_| corrupt(opt.path(), format!("tensor `adamw.steps` is {steps}")))?;
            a.restore(
                files::read::<f32>(opt, "adamw.moment1", DType::F32, &[np])?,
                files::read::<f32>(opt, "adamw.moment2", DType::F32, &[np])?,
                steps,
            )
            .map_err(|e| detect_err(opt.path(), e))?;
            Optimizer::AdamW(a)
        } else {
            let mut sgd = Sgd::ppyoloe(&model.layout);
            sgd.momentum = scalar("sgd.momentum")?;
            sgd.weight_decay = scalar("sgd.weight_decay")?;
            sgd.decay_mask = files::read::<u8>(opt, "sgd.decay_mask", DType::U8, &[np])?;
            sgd.restore_velocity(files::read::<f32>(opt, "sgd.velocity", DType::F32, &[np])?)
                .map_err(|e| detect_err(opt.path(), e))?;
            Optimizer::Momentum(sgd)
        };

        let ema = if sf.ema {
            let updates = files::read::<i64>(opt, "ema.updates", DType::I64, &[1])?[0];
            let updates = u64::try_from(updates)
                .map_err(|_| corrupt(opt.path(), format!("tensor `ema.updates` is {updates}")))?;
            let mut e = Ema::new(scalar("ema.decay")?, np, ns);
            e.restore(
                files::read::<f32>(opt, "ema.params", DType::F32, &[np])?,
                files::read::<f32>(opt, "ema.stats", DType::F32, &[ns])?,
                updates,
                scalar("ema.last_decay")?,
            )
            .map_err(|e| detect_err(opt.path(), e))?;
            Some(e)
        } else {
            None
        };
        tracing::info!(
            checkpoint = %self.dir.join(&self.name).display(),
            epoch = sf.epoch,
            step = sf.global_step,
            "loaded checkpoint"
        );
        Ok(TrainSnapshot {
            model,
            optimizer,
            ema,
            state: TrainerState {
                config_name: sf.config_name,
                epoch: sf.epoch,
                global_step: sf.global_step,
                best_ap,
                best_epoch: sf.best_epoch,
                data: sf.data,
                fingerprint: sf.fingerprint,
            },
        })
    }
}

/// Saves the epoch snapshot of `epoch_id` (0-based, PaddleDetection's numbering) in `dir`.
pub fn save_epoch(dir: &Path, epoch_id: u64, snap: SnapshotRef<'_>) -> Result<Checkpoint> {
    save_named(dir, &epoch_id.to_string(), snap)
}

/// Saves `snap` as checkpoint `name` (`model_final`, `best_model`, …) in `dir`.
pub fn save_named(dir: &Path, name: &str, snap: SnapshotRef<'_>) -> Result<Checkpoint> {
    let c = Checkpoint::new(dir, name)?;
    c.save(snap)?;
    Ok(c)
}

/// PaddleDetection's snapshot rule after epoch `epoch_id` (0-based) of `epochs`: the last epoch
/// saves `model_final`, every `snapshot_epoch`-th one saves its number, others save nothing.
pub fn snapshot_name(epoch_id: u64, epochs: u64, snapshot_epoch: u64) -> Option<String> {
    if epochs > 0 && epoch_id + 1 == epochs {
        Some("model_final".into())
    } else if snapshot_epoch > 0 && (epoch_id + 1).is_multiple_of(snapshot_epoch) {
        Some(epoch_id.to_string())
    } else {
        None
    }
}

/// The committed checkpoints in `dir` (those with a `.state.json`), epoch numbers ascending
/// first, then the named ones alphabetically. Removes nothing; a missing folder lists none.
pub fn list(dir: &Path) -> Result<Vec<Checkpoint>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        let file = entry.file_name().to_string_lossy().into_owned();
        if let Some(name) = file.strip_suffix(".state.json")
            && let Ok(c) = Checkpoint::new(dir, name)
        {
            names.push(c);
        }
    }
    names.sort_by(|a, b| {
        let key = |c: &Checkpoint| {
            (
                c.name.parse::<u64>().ok().is_none(),
                c.name.parse::<u64>().ok(),
                c.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    Ok(names)
}

/// Loads the checkpoint a `-r` argument names and refuses it, naming every difference, unless it
/// was written by the config `config_name` with the fingerprint `now`.
pub fn resume(
    arg: impl AsRef<Path>,
    arch: &Arch,
    config_name: &str,
    now: &Fingerprint,
) -> Result<TrainSnapshot> {
    let c = Checkpoint::from_resume_arg(arg)?;
    let snap = c.load(arch)?;
    let mut differences = Vec::new();
    if snap.state.config_name != config_name {
        differences.push(format!(
            "config_name: checkpoint {}, now {config_name}",
            snap.state.config_name
        ));
    }
    differences.extend(snap.state.fingerprint.differences(now));
    if !differences.is_empty() {
        return Err(CheckpointError::Incompatible {
            path: c.state_path(),
            differences,
        });
    }
    Ok(snap)
}

fn detect_err(path: &Path, e: DetectError) -> CheckpointError {
    corrupt(path, e.to_string())
}

fn check_lengths(c: &Checkpoint, snap: &SnapshotRef<'_>) -> Result<()> {
    let m = snap.model;
    let (np, ns, nf) = (
        m.layout.num_params(),
        m.layout.num_stats(),
        m.layout.num_frozen(),
    );
    let invalid = |path: PathBuf, msg: String| Err(CheckpointError::Invalid { path, msg });
    if m.params.len() != np || m.stats.len() != ns || m.frozen.len() != nf {
        return invalid(
            c.raw_path(),
            format!(
                "model buffers hold {}/{}/{} params/stats/frozen, the layout {np}/{ns}/{nf}",
                m.params.len(),
                m.stats.len(),
                m.frozen.len()
            ),
        );
    }
    let (state_lens, mask_len) = match snap.optimizer {
        Optimizer::Momentum(s) => (vec![s.velocity.len()], s.decay_mask.len()),
        Optimizer::AdamW(a) => (vec![a.moment1.len(), a.moment2.len()], a.decay_mask.len()),
    };
    if state_lens.iter().any(|&l| l != np) || mask_len != np {
        return invalid(
            c.opt_path(),
            format!(
                "{} state/decay mask hold {state_lens:?}/{mask_len} values for {np} parameters",
                snap.optimizer.name()
            ),
        );
    }
    if let Some(e) = snap.ema
        && (e.params.len() != np || e.stats.len() != ns)
    {
        return invalid(
            c.opt_path(),
            format!(
                "EMA holds {}/{} params/stats, the layout {np}/{ns}",
                e.params.len(),
                e.stats.len()
            ),
        );
    }
    Ok(())
}

/// The state dict with the given parameter and statistics buffers (same layout as `model`).
fn state_dict(
    path: &Path,
    model: &ModelState,
    params: &[f32],
    stats: &[f32],
) -> Result<Vec<(String, Tensor)>> {
    model
        .layout
        .state_dict_slots()
        .map(|s| {
            let buf = match s.spec.kind {
                TensorKind::Param => params,
                TensorKind::Buffer => stats,
                TensorKind::Frozen => &model.frozen,
            };
            Ok((
                s.spec.name.clone(),
                files::tensor(path, &buf[s.range()], &s.spec.shape)?,
            ))
        })
        .collect()
}

fn opt_tensors(
    path: &Path,
    optimizer: &Optimizer,
    ema: Option<&Ema>,
) -> Result<Vec<(String, Tensor)>> {
    let mut out = match optimizer {
        Optimizer::Momentum(sgd) => sgd_tensors(path, sgd)?,
        Optimizer::AdamW(a) => adamw_tensors(path, a)?,
    };
    if let Some(e) = ema {
        let updates = i64::try_from(e.updates).map_err(|_| CheckpointError::Invalid {
            path: path.to_path_buf(),
            msg: format!("EMA update count {} does not fit an I64", e.updates),
        })?;
        out.extend([
            (
                "ema.params".to_string(),
                files::tensor(path, &e.params, &[e.params.len()])?,
            ),
            (
                "ema.stats".to_string(),
                files::tensor(path, &e.stats, &[e.stats.len()])?,
            ),
            (
                "ema.decay".to_string(),
                files::tensor(path, &[e.decay], &[1])?,
            ),
            (
                "ema.updates".to_string(),
                files::tensor(path, &[updates], &[1])?,
            ),
            (
                "ema.last_decay".to_string(),
                files::tensor(path, &[e.last_decay], &[1])?,
            ),
        ]);
    }
    Ok(out)
}

/// A fresh id for one save: the name, step, process, time and a counter, hashed.
fn new_id(name: &str, step: u64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!(
        "{name}/{step}/{}/{nanos}/{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    Sha256::digest(seed.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Momentum SGD's state under the names checkpoints have always used.
fn sgd_tensors(path: &Path, sgd: &Sgd) -> Result<Vec<(String, Tensor)>> {
    let n = sgd.velocity.len();
    Ok(vec![
        (
            "sgd.velocity".to_string(),
            files::tensor(path, &sgd.velocity, &[n])?,
        ),
        (
            "sgd.decay_mask".to_string(),
            files::tensor(path, &sgd.decay_mask, &[n])?,
        ),
        (
            "sgd.momentum".to_string(),
            files::tensor(path, &[sgd.momentum], &[1])?,
        ),
        (
            "sgd.weight_decay".to_string(),
            files::tensor(path, &[sgd.weight_decay], &[1])?,
        ),
    ])
}

/// AdamW's state: both moments, the mask, the constants and the step count.
fn adamw_tensors(path: &Path, a: &AdamW) -> Result<Vec<(String, Tensor)>> {
    let n = a.moment1.len();
    let steps = i64::try_from(a.steps).map_err(|_| CheckpointError::Invalid {
        path: path.to_path_buf(),
        msg: format!("AdamW step count {} does not fit an I64", a.steps),
    })?;
    let mut out = vec![
        (
            "adamw.moment1".to_string(),
            files::tensor(path, &a.moment1, &[n])?,
        ),
        (
            "adamw.moment2".to_string(),
            files::tensor(path, &a.moment2, &[n])?,
        ),
        (
            "adamw.decay_mask".to_string(),
            files::tensor(path, &a.decay_mask, &[n])?,
        ),
        (
            "adamw.steps".to_string(),
            files::tensor(path, &[steps], &[1])?,
        ),
    ];
    for (name, v) in [
        ("adamw.beta1", a.beta1),
        ("adamw.beta2", a.beta2),
        ("adamw.epsilon", a.epsilon),
        ("adamw.weight_decay", a.weight_decay),
    ] {
        out.push((name.to_string(), files::tensor(path, &[v], &[1])?));
    }
    Ok(out)
}
