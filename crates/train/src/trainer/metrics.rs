//! What a user watches: PaddleDetection's console line and one JSON object a line in
//! `metrics.jsonl`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::TrainError;

/// The loss terms of one step, averaged over the ranks.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepLosses {
    /// Weighted total.
    pub loss: f64,
    /// Varifocal classification loss.
    pub loss_cls: f64,
    /// GIoU loss.
    pub loss_iou: f64,
    /// DFL loss.
    pub loss_dfl: f64,
    /// L1 box distance (logged only).
    pub loss_l1: f64,
}

impl StepLosses {
    /// The terms' names, in the order the ranks exchange them.
    pub const NAMES: [&'static str; 5] = ["loss", "loss_cls", "loss_iou", "loss_dfl", "loss_l1"];

    /// The terms as an array in [`StepLosses::NAMES`] order.
    pub fn to_array(self) -> [f64; 5] {
        [
            self.loss,
            self.loss_cls,
            self.loss_iou,
            self.loss_dfl,
            self.loss_l1,
        ]
    }

    /// From an array in [`StepLosses::NAMES`] order.
    pub fn from_array(a: [f64; 5]) -> StepLosses {
        StepLosses {
            loss: a[0],
            loss_cls: a[1],
            loss_iou: a[2],
            loss_dfl: a[3],
            loss_l1: a[4],
        }
    }
}

/// One training step as logged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepRecord {
    /// Epoch, 0-based.
    pub epoch: usize,
    /// Iteration within the epoch, 0-based.
    pub iter: usize,
    /// Iterations per epoch.
    pub iters_per_epoch: usize,
    /// Global step, 0-based.
    pub step: usize,
    /// Learning rate used by the step.
    pub lr: f64,
    /// Losses averaged over the ranks.
    pub losses: StepLosses,
    /// Seconds of the whole step.
    pub batch_cost: f64,
    /// Seconds waiting for the batch.
    pub data_cost: f64,
    /// Seconds spent in the gradient all-reduce that nothing overlapped.
    pub comm_exposed: f64,
    /// Images per second over all ranks.
    pub ips: f64,
    /// Ranks in the job (the console line adds images/s per rank when there are several).
    pub ranks: usize,
    /// Estimated seconds left.
    pub eta_s: f64,
}

impl StepRecord {
    /// PaddleDetection's console line; `ips` is the whole job's, followed by
    /// `(… per rank)` when there are several ranks (PaddleDetection shows rank 0's alone).
    pub fn console_line(&self) -> String {
        let l = &self.losses;
        let width = self.iters_per_epoch.to_string().len();
        let mut line = format!(
            "Epoch: [{}] [{:>width$}/{}] learning_rate: {:.6} loss: {:.6} loss_cls: {:.6} \
             loss_iou: {:.6} loss_dfl: {:.6} loss_l1: {:.6} eta: {} batch_cost: {:.4} \
             data_cost: {:.4} ips: {:.4} images/s",
            self.epoch,
            self.iter,
            self.iters_per_epoch,
            self.lr,
            l.loss,
            l.loss_cls,
            l.loss_iou,
            l.loss_dfl,
            l.loss_l1,
            eta(self.eta_s),
            self.batch_cost,
            self.data_cost,
            self.ips,
        );
        if self.ranks > 1 {
            line.push_str(&format!(" ({:.4} per rank)", self.ips / self.ranks as f64));
        }
        line
    }

    /// The `metrics.jsonl` row, keys in a fixed order (`kind` first).
    pub fn json(&self) -> String {
        let l = &self.losses;
        let fields: [(&str, f64); 10] = [
            ("lr", self.lr),
            ("loss", l.loss),
            ("loss_cls", l.loss_cls),
            ("loss_iou", l.loss_iou),
            ("loss_dfl", l.loss_dfl),
            ("loss_l1", l.loss_l1),
            ("batch_cost", self.batch_cost),
            ("data_cost", self.data_cost),
            ("comm_exposed", self.comm_exposed),
            ("ips", self.ips),
        ];
        let mut row = format!(
            "{{\"kind\":\"train\",\"epoch\":{},\"iter\":{},\"step\":{}",
            self.epoch, self.iter, self.step
        );
        for (key, value) in &fields {
            // JSON has no NaN or infinity: such a value is written as null.
            let v = serde_json::Number::from_f64(*value)
                .map_or_else(|| "null".to_string(), |n| n.to_string());
            row.push_str(&format!(",\"{key}\":{v}"));
        }
        row.push('}');
        row
    }
}

/// `h:mm:ss`, as Python's `datetime.timedelta` prints it.
pub(super) fn eta(seconds: f64) -> String {
    let s = if seconds.is_finite() && seconds > 0.0 {
        seconds.round() as u64
    } else {
        0
    };
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// `metrics.jsonl`, written by rank 0 (one row per step, flushed as it goes).
pub struct MetricsFile {
    path: PathBuf,
    out: BufWriter<File>,
}

impl MetricsFile {
    /// Creates (truncates) `dir/metrics.jsonl`, creating `dir`.
    pub fn create(dir: &Path) -> Result<MetricsFile, TrainError> {
        std::fs::create_dir_all(dir).map_err(|error| TrainError::Io {
            path: dir.to_path_buf(),
            error,
        })?;
        let path = dir.join("metrics.jsonl");
        let file = File::create(&path).map_err(|error| TrainError::Io {
            path: path.clone(),
            error,
        })?;
        Ok(MetricsFile {
            path,
            out: BufWriter::new(file),
        })
    }

    /// Opens `dir/metrics.jsonl` to append to it (a resumed run), creating it if missing.
    pub fn append(dir: &Path) -> Result<MetricsFile, TrainError> {
        std::fs::create_dir_all(dir).map_err(|error| TrainError::Io {
            path: dir.to_path_buf(),
            error,
        })?;
        let path = dir.join("metrics.jsonl");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|error| TrainError::Io {
                path: path.clone(),
                error,
            })?;
        Ok(MetricsFile {
            path,
            out: BufWriter::new(file),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one row and flushes it.
    pub fn write(&mut self, row: &str) -> Result<(), TrainError> {
        let io = |error| TrainError::Io {
            path: self.path.clone(),
            error,
        };
        writeln!(self.out, "{row}").map_err(io)?;
        self.out.flush().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_line_and_row() {
        let r = StepRecord {
            epoch: 1,
            iter: 3,
            iters_per_epoch: 20,
            step: 23,
            lr: 0.001,
            losses: StepLosses::from_array([2.0, 1.0, 0.25, 0.5, 0.75]),
            batch_cost: 0.5,
            data_cost: 0.1,
            comm_exposed: 0.01,
            ips: 16.0,
            ranks: 1,
            eta_s: 3725.0,
        };
        let line = r.console_line();
        assert!(
            line.starts_with("Epoch: [1] [ 3/20] learning_rate: 0.001000 loss: 2.000000"),
            "{line}"
        );
        assert!(line.contains("loss_l1: 0.750000 eta: 1:02:05 batch_cost: 0.5000"));
        assert!(line.ends_with("ips: 16.0000 images/s"), "{line}");
        let two = StepRecord { ranks: 2, ..r };
        assert!(
            two.console_line()
                .ends_with("ips: 16.0000 images/s (8.0000 per rank)")
        );
        let text = r.json();
        assert!(
            text.starts_with(
                "{\"kind\":\"train\",\"epoch\":1,\"iter\":3,\"step\":23,\"lr\":0.001,"
            ),
            "{text}"
        );
        let j: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(j["step"], 23);
        assert_eq!(j["loss_iou"], 0.25);
    }
}
