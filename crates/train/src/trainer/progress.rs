//! What rank 0 shows on its standard output while training. On a terminal: an indicatif
//! progress bar over the run's steps (epoch, iteration, loss, images/s, eta), with every line
//! the trainer prints (PaddleDetection's log line every `log_iter` steps, evaluation summaries,
//! checkpoints) written above the bar through the bar itself, so the two never tangle.
//! Elsewhere (a pipe, a file, `ringdet launch`, whose workers' stdout is a pipe) no bar, just
//! the same lines, as PaddleDetection prints them. Ranks other than 0 print nothing.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::metrics::{StepRecord, eta};

/// Rank 0's console: a bar on a terminal, plain lines otherwise; silent on other ranks.
pub(super) struct Progress {
    rank0: bool,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// For `rank`, a run of `total_steps` steps of which `done` are done (a resumed run). The
    /// bar is drawn only on rank 0 when its stdout is a terminal (`RINGDET_NO_BAR` set to
    /// anything turns it off).
    pub(super) fn new(rank: usize, total_steps: usize, done: usize) -> Progress {
        let rank0 = rank == 0;
        let want_bar = rank0
            && std::io::stdout().is_terminal()
            && std::env::var_os("RINGDET_NO_BAR").is_none();
        let bar = want_bar.then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(total_steps as u64),
                ProgressDrawTarget::stdout(),
            );
            // The template is a constant: a bad one is a bug, and the default style still works.
            if let Ok(style) = ProgressStyle::with_template(
                "[{elapsed_precise}] {wide_bar:.cyan/blue} {pos}/{len} steps  {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_position(done as u64);
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        });
        Progress { rank0, bar }
    }

    /// True when a bar is drawn.
    #[cfg(test)]
    pub(super) fn has_bar(&self) -> bool {
        self.bar.is_some()
    }

    /// Prints one line (or several) on rank 0: above the bar, or plainly without one.
    pub(super) fn println(&self, text: &str) {
        if !self.rank0 {
            return;
        }
        let text = text.strip_suffix('\n').unwrap_or(text);
        match &self.bar {
            Some(bar) => bar.println(text),
            None => println!("{text}"),
        }
    }

    /// Moves the bar past `record`'s step and shows its figures.
    pub(super) fn step(&self, record: &StepRecord) {
        if let Some(bar) = &self.bar {
            bar.set_position(record.step as u64 + 1);
            bar.set_message(bar_message(record));
        }
    }

    /// Shows what the run is doing between steps (evaluating, saving).
    pub(super) fn status(&self, what: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(what.to_string());
        }
    }

    /// Runs `f` with the bar hidden (for work that logs to stderr, like evaluation, whose lines
    /// would otherwise leave a copy of the bar behind them).
    pub(super) fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    /// Removes the bar (the lines printed above it stay).
    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // An error ends training early: leave the terminal clean for its message.
        self.finish();
    }
}

/// The figures beside the bar: epoch, iteration, loss, images/s, eta.
pub(super) fn bar_message(r: &StepRecord) -> String {
    format!(
        "Epoch {} [{}/{}] loss {:.4} ips {:.1} images/s eta {}",
        r.epoch,
        r.iter + 1,
        r.iters_per_epoch,
        r.losses.loss,
        r.ips,
        eta(r.eta_s)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trainer::StepLosses;

    #[test]
    fn the_bar_shows_epoch_iter_loss_ips_and_eta() {
        let r = StepRecord {
            epoch: 2,
            iter: 4,
            iters_per_epoch: 10,
            step: 24,
            lr: 0.01,
            losses: StepLosses::from_array([1.23456, 0.5, 0.25, 0.5, 0.1]),
            batch_cost: 0.5,
            data_cost: 0.0,
            comm_exposed: 0.0,
            ips: 32.0,
            ranks: 2,
            eta_s: 65.0,
        };
        assert_eq!(
            bar_message(&r),
            "Epoch 2 [5/10] loss 1.2346 ips 32.0 images/s eta 0:01:05"
        );
    }

    #[test]
    fn no_bar_off_rank_0() {
        let other = Progress::new(1, 10, 0);
        assert!(!other.has_bar());
        other.println("not printed");
    }
}
