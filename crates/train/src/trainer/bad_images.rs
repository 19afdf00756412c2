//! The training set's missing or corrupt images: `TrainReader.on_bad_image` says whether one
//! stops training (`stop`, the default: the error names the file and why) or is skipped
//! (`skip`). A skipped image's slot in its batch is filled by the next record of the dataset
//! (the loader's rule), so every rank still makes the same number of full batches and the ranks
//! stay in step; the same global batch is made whatever the number of ranks. Skips are counted
//! on each rank, summed across the ranks at the end of every epoch, printed by rank 0 when there
//! were any, and written to `metrics.jsonl` as a `data` row every epoch, so nothing is lost
//! silently (each skipped file is also named in a warning on the rank that met it).

use ringdet_coco::image::ImageError;
use ringdet_coco::loader::{BadImagePolicy, Loader, LoaderError};
use ringdet_collective::ReduceOp;
use serde_yaml_ng::Value;

use super::progress::Progress;
use super::{MetricsFile, Replicas, TrainError};
use crate::config::Config;

/// The config key.
pub const KEY: &str = "TrainReader.on_bad_image";

/// Reads [`KEY`]: `stop` (default) or `skip`.
pub(super) fn policy(c: &Config) -> Result<BadImagePolicy, TrainError> {
    let bad = |got: String| TrainError::Setting {
        key: KEY.into(),
        msg: format!("{got}: expected `stop` (the default) or `skip`"),
    };
    match c.get(KEY) {
        None | Some(Value::Null) => Ok(BadImagePolicy::Fail),
        Some(Value::String(s)) => match s.trim() {
            "stop" | "" => Ok(BadImagePolicy::Fail),
            "skip" => Ok(BadImagePolicy::Skip),
            other => Err(bad(format!("`{other}`"))),
        },
        Some(other) => Err(bad(format!("{other:?}"))),
    }
}

/// The error for a batch the loader could not make on `rank`: a bad image names its file, says
/// whether it is missing, unreadable or undecodable, and points at [`KEY`].
pub(super) fn loader_error(rank: usize, e: LoaderError) -> TrainError {
    let hint = format!("{KEY}: stop; `skip` would skip and count such images");
    TrainError::Data(match e {
        LoaderError::Image(ImageError::Read { path, error })
            if error.kind() == std::io::ErrorKind::NotFound =>
        {
            format!(
                "rank {rank}: {}: missing image file ({hint})",
                path.display()
            )
        }
        LoaderError::Image(ImageError::Read { path, error }) => format!(
            "rank {rank}: {}: unreadable image file: {error} ({hint})",
            path.display()
        ),
        LoaderError::Image(ImageError::Decode { path, reason }) => format!(
            "rank {rank}: {}: undecodable image: {reason} ({hint})",
            path.display()
        ),
        other => format!("rank {rank}: {other}"),
    })
}

/// Per-epoch accounting of skipped images (under `skip`).
pub(super) struct SkipCount {
    policy: BadImagePolicy,
    seen: usize,
    total: u64,
}

impl SkipCount {
    /// Starts counting for `policy` (nothing is counted under `stop`).
    pub(super) fn new(policy: BadImagePolicy) -> SkipCount {
        SkipCount {
            policy,
            seen: 0,
            total: 0,
        }
    }

    /// After epoch `epoch` (every rank calls it, the sum is collective): sums this epoch's skips
    /// over the ranks; rank 0 prints them when there were any and writes the `data` row.
    /// Returns the epoch's count over all ranks.
    pub(super) fn end_epoch(
        &mut self,
        epoch: usize,
        loader: &Loader,
        replicas: &Replicas,
        metrics: Option<&mut MetricsFile>,
        progress: &Progress,
    ) -> Result<u64, TrainError> {
        if self.policy != BadImagePolicy::Skip {
            return Ok(0);
        }
        let now = loader.bad_images();
        let mine = now.saturating_sub(self.seen);
        self.seen = now;
        // f32 holds counts exactly up to 2^24 per epoch, far above any dataset's bad images.
        let mut sum = [mine as f32];
        replicas
            .all_reduce(&mut sum, ReduceOp::Sum)
            .map_err(|error| TrainError::Comm {
                rank: replicas.rank(),
                what: "summing skipped images",
                error,
            })?;
        let epoch_count = sum[0].round() as u64;
        self.total += epoch_count;
        if epoch_count > 0 {
            progress.println(&format!(
                "epoch {epoch}: skipped {epoch_count} unreadable training image(s) over {} \
                 rank(s), {} since this run started ({KEY}: skip; each is named in a warning)",
                replicas.world(),
                self.total
            ));
        }
        if let Some(m) = metrics {
            let row = serde_json::json!({
                "kind": "data",
                "epoch": epoch,
                "bad_images": epoch_count,
                "bad_images_total": self.total,
            });
            m.write(&row.to_string())?;
        }
        Ok(epoch_count)
    }
}
