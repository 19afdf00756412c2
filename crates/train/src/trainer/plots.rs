//! The run's curves as one PNG, `curves.png` beside `metrics.jsonl`: rank 0 redraws it at each
//! snapshot and at the end of training, and `ringdet plot` redraws it from any `metrics.jsonl`.
//! Drawn with plotters' bitmap backend into an RGB buffer and encoded with the `png` crate; text uses a
//! DejaVu Sans subset embedded in the binary (plotters' `ab_glyph` feature), so nothing is read
//! from the system's fonts at run time.
//!
//! Three panels: the losses (`loss`, `loss_cls`, `loss_iou`, `loss_dfl`) against the global
//! step, the learning rate against the step, and COCO mAP (IoU .50:.95) and mAP50 per evaluated
//! epoch (the `eval` rows; the panel says so when there are none).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;

/// The PNG's name in the output directory.
pub const CURVES_FILE: &str = "curves.png";

/// The PNG's width in pixels.
pub const WIDTH: u32 = 1200;
/// The PNG's height in pixels.
pub const HEIGHT: u32 = 900;

/// The embedded font (DejaVu Sans cut to printable ASCII; `assets/fonts/make-font.sh`).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-ascii.ttf");

/// The loss terms drawn, in the order of the legend.
const LOSSES: [&str; 4] = ["loss", "loss_cls", "loss_iou", "loss_dfl"];

/// Why the curves could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// A row of `metrics.jsonl` is malformed.
    #[error("{path}:{line}: {msg}")]
    Row {
        /// The metrics file.
        path: PathBuf,
        /// Its line, 1-based.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// The embedded font could not be registered with plotters.
    #[error("the embedded plot font is not a valid TrueType font")]
    Font,
    /// Drawing or encoding failed.
    #[error("{path}: drawing the curves: {msg}")]
    Draw {
        /// The PNG being written.
        path: PathBuf,
        /// What failed.
        msg: String,
    },
}

/// One `train` row's values (a `null`, written for a non-finite value, is `None`).
#[derive(Clone, Debug, Default, PartialEq)]
struct TrainPoint {
    lr: Option<f64>,
    losses: [Option<f64>; 4],
}

/// One `eval` row's mAP and mAP50.
#[derive(Clone, Copy, Debug, PartialEq)]
struct EvalPoint {
    map: f64,
    map50: f64,
}

/// The rows of a `metrics.jsonl` that the plots read. A step or epoch that appears twice (a run
/// resumed from an earlier checkpoint appends its rows again) keeps its last row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Curves {
    train: BTreeMap<u64, TrainPoint>,
    eval: BTreeMap<u64, EvalPoint>,
}

impl Curves {
    /// Reads `metrics.jsonl`; a malformed row is an error naming its line.
    pub fn read(path: &Path) -> Result<Curves, PlotError> {
        let text = std::fs::read_to_string(path).map_err(|error| PlotError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        Curves::parse(&text, path)
    }

    /// Parses the text of a `metrics.jsonl`; `path` only names it in errors. Blank lines and rows
    /// of other kinds (`data`, …) are skipped; `train` rows need `step` and the loss terms
    /// (`lr` optional), `eval` rows `epoch` and `stats` (at least mAP and mAP50).
    pub fn parse(text: &str, path: &Path) -> Result<Curves, PlotError> {
        let mut curves = Curves::default();
        for (i, line) in text.lines().enumerate() {
            let bad = |msg: String| PlotError::Row {
                path: path.to_path_buf(),
                line: i + 1,
                msg,
            };
            if line.trim().is_empty() {
                continue;
            }
            let row: Value =
                serde_json::from_str(line).map_err(|e| bad(format!("not a JSON object: {e}")))?;
            let obj = row
                .as_object()
                .ok_or_else(|| bad("not a JSON object".into()))?;
            let kind = obj
                .get("kind")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("no \"kind\" string".into()))?;
            let index = |key: &str| {
                obj.get(key)
                    .and_then(Value::as_u64)
                    .ok_or_else(|| bad(format!("{kind} row without an integer \"{key}\"")))
            };
            let number = |key: &str| match obj.get(key) {
                Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| bad(format!("\"{key}\" is not a number: {v}"))),
                None => Err(bad(format!("{kind} row without \"{key}\""))),
            };
            match kind {
                "train" => {
                    let step = index("step")?;
                    let mut losses = [None; 4];
                    for (slot, key) in losses.iter_mut().zip(LOSSES) {
                        *slot = number(key)?;
                    }
                    let lr = match obj.get("lr") {
                        None => None,
                        Some(_) => number("lr")?,
                    };
                    curves.train.insert(step, TrainPoint { lr, losses });
                }
                "eval" => {
                    let epoch = index("epoch")?;
                    let stats = obj
                        .get("stats")
                        .and_then(Value::as_array)
                        .ok_or_else(|| bad("eval row without a \"stats\" array".into()))?;
                    let stat = |k: usize| {
                        stats.get(k).and_then(Value::as_f64).ok_or_else(|| {
                            bad(format!("eval row: stats[{k}] is missing or not a number"))
                        })
                    };
                    let point = EvalPoint {
                        map: stat(0)?,
                        map50: stat(1)?,
                    };
                    curves.eval.insert(epoch, point);
                }
                _ => {}
            }
        }
        Ok(curves)
    }

    /// Training steps read.
    pub fn train_rows(&self) -> usize {
        self.train.len()
    }

    /// Evaluations read.
    pub fn eval_rows(&self) -> usize {
        self.eval.len()
    }

    /// Draws the three panels into a `WIDTH`×`HEIGHT` PNG at `out`, written to a temporary file
    /// and renamed, so a viewer never sees half a file.
    pub fn draw(&self, out: &Path) -> Result<(), PlotError> {
        register_font()?;
        let draw_err = |msg: String| PlotError::Draw {
            path: out.to_path_buf(),
            msg,
        };
        let (w, h) = (WIDTH as usize, HEIGHT as usize);
        let mut rgb = vec![0u8; w * h * 3];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| draw_err(e.to_string()))?;
            let (top, bottom) = root.split_vertically(HEIGHT * 11 / 20);
            let (left, right) = bottom.split_horizontally(WIDTH / 2);
            self.draw_losses(&top).map_err(draw_err)?;
            self.draw_lr(&left).map_err(draw_err)?;
            self.draw_map(&right).map_err(draw_err)?;
            root.present().map_err(|e| draw_err(e.to_string()))?;
        }
        let mut png = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut png, WIDTH, HEIGHT);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            encoder.set_compression(png::Compression::Balanced);
            let mut writer = encoder
                .write_header()
                .map_err(|e| draw_err(format!("PNG encoding: {e}")))?;
            writer
                .write_image_data(&rgb)
                .map_err(|e| draw_err(format!("PNG encoding: {e}")))?;
            writer
                .finish()
                .map_err(|e| draw_err(format!("PNG encoding: {e}")))?;
        }
        let mut tmp = out.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |error| PlotError::Io { path, error }
        };
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        std::fs::write(&tmp, &png).map_err(io(&tmp))?;
        std::fs::rename(&tmp, out).map_err(io(out))
    }

    fn draw_losses(&self, area: &DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), String> {
        let series: Vec<Vec<(f64, f64)>> = (0..LOSSES.len())
            .map(|t| {
                self.train
                    .iter()
                    .filter_map(|(&s, p)| p.losses[t].map(|v| (s as f64, v)))
                    .collect()
            })
            .collect();
        let colors = [BLACK, RED, BLUE, RGBColor(0, 150, 0)];
        let all = series.iter().flatten().copied();
        let names = LOSSES.map(String::from);
        lines_panel(
            area,
            Panel {
                title: "Training losses (mean over ranks)",
                x_desc: "step",
                y_desc: "loss",
                integer_x: false,
                y_range: None,
                smooth: true,
                legend: SeriesLabelPosition::UpperRight,
            },
            &series,
            &names,
            &colors.map(|c| c.to_rgba()),
            all,
        )
    }

    fn draw_lr(&self, area: &DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), String> {
        let points: Vec<(f64, f64)> = self
            .train
            .iter()
            .filter_map(|(&s, p)| p.lr.map(|v| (s as f64, v)))
            .collect();
        let all = points.clone();
        lines_panel(
            area,
            Panel {
                title: "Learning rate",
                x_desc: "step",
                y_desc: "learning rate",
                integer_x: false,
                y_range: None,
                smooth: false,
                legend: SeriesLabelPosition::UpperRight,
            },
            &[points],
            &["lr".to_string()],
            &[MAGENTA.to_rgba()],
            all.into_iter(),
        )
    }

    fn draw_map(&self, area: &DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), String> {
        let map: Vec<(f64, f64)> = self.eval.iter().map(|(&e, p)| (e as f64, p.map)).collect();
        let map50: Vec<(f64, f64)> = self
            .eval
            .iter()
            .map(|(&e, p)| (e as f64, p.map50))
            .collect();
        let all: Vec<(f64, f64)> = map.iter().chain(&map50).copied().collect();
        lines_panel(
            area,
            Panel {
                title: "bbox mAP per evaluation",
                x_desc: "epoch (0-based)",
                y_desc: "AP",
                integer_x: true,
                y_range: Some(0.0..1.02),
                smooth: false,
                legend: SeriesLabelPosition::LowerRight,
            },
            &[map, map50],
            &["mAP (IoU .50:.95)".to_string(), "mAP50".to_string()],
            &[BLUE.to_rgba(), RED.to_rgba()],
            all.into_iter(),
        )
    }
}

/// Registers the embedded font as plotters' `sans-serif` (once per process); public so that other
/// figures of the binary (`ringdet scaling-sim --plot`) draw with the same font.
pub fn register_font() -> Result<(), PlotError> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    });
    if ok { Ok(()) } else { Err(PlotError::Font) }
}

/// Series with at least this many points are smoothed where the panel asks for it.
const SMOOTH_FROM: usize = 100;

/// The mean of each point's last `w` values (fewer at the start).
fn moving_average(points: &[(f64, f64)], w: usize) -> Vec<(f64, f64)> {
    let mut sum = 0.0;
    points
        .iter()
        .enumerate()
        .map(|(i, &(x, y))| {
            sum += y;
            if i >= w {
                sum -= points[i - w].1;
            }
            (x, sum / (i + 1).min(w) as f64)
        })
        .collect()
}

/// A tick label short enough for any magnitude (`0.0001` as `1.0e-4`).
fn tick(v: &f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else if a < 0.1 {
        format!("{v:.4}")
    } else {
        let s = format!("{v:.3}");
        let s = s.trim_end_matches('0');
        s.trim_end_matches('.').to_string()
    }
}

/// `lo..hi` widened by 5% on each side (and to a unit span when flat).
fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    if !lo.is_finite() || !hi.is_finite() {
        return 0.0..1.0;
    }
    let span = hi - lo;
    if span <= f64::EPSILON * hi.abs().max(1.0) {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return (lo - d)..(hi + d);
    }
    (lo - 0.05 * span)..(hi + 0.05 * span)
}

/// How one panel is labelled and scaled.
struct Panel<'a> {
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    /// Whole-number x ticks only (epochs).
    integer_x: bool,
    /// A fixed y range (AP: 0..1) instead of the data's.
    y_range: Option<std::ops::Range<f64>>,
    /// Above `SMOOTH_FROM` points, draw each series faint and its moving average solid.
    smooth: bool,
    legend: SeriesLabelPosition,
}

/// One chart: each series as a line with a dot per point when it has few points, a legend,
/// and "no rows yet" written in the middle when every series is empty.
fn lines_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    panel: Panel<'_>,
    series: &[Vec<(f64, f64)>],
    names: &[String],
    colors: &[RGBAColor],
    all: impl Iterator<Item = (f64, f64)>,
) -> Result<(), String> {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    let mut any = false;
    for (x, y) in all {
        any = true;
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !any {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    let xr = if panel.integer_x {
        (x0 - 0.3)..(x1 + 0.3)
    } else if any && x1 - x0 < 1.0 {
        (x0 - 0.5)..(x1 + 0.5)
    } else {
        x0..x1.max(x0 + 1.0)
    };
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(70)
        .build_cartesian_2d(xr, panel.y_range.unwrap_or_else(|| padded(y0, y1)))
        .map_err(|e| e.to_string())?;
    let whole = |v: &f64| {
        if v.fract().abs() < 1e-9 {
            format!("{v:.0}")
        } else {
            String::new()
        }
    };
    let x_fmt: &dyn Fn(&f64) -> String = if panel.integer_x { &whole } else { &tick };
    chart
        .configure_mesh()
        .x_desc(panel.x_desc)
        .y_desc(panel.y_desc)
        .x_label_formatter(x_fmt)
        .y_label_formatter(&tick)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .draw()
        .map_err(|e| e.to_string())?;
    if !any {
        let (w, h) = area.dim_in_pixel();
        area.draw(&Text::new(
            "no rows yet (mAP: train with --eval)",
            (w as i32 / 2 - 150, h as i32 / 2),
            ("sans-serif", 18),
        ))
        .map_err(|e| e.to_string())?;
        return Ok(());
    }
    let longest = series.iter().map(Vec::len).max().unwrap_or(0);
    let window = (panel.smooth && longest >= SMOOTH_FROM).then(|| (longest / 40).max(5));
    for ((points, name), color) in series.iter().zip(names).zip(colors) {
        let color = *color;
        let style = ShapeStyle::from(color).stroke_width(2);
        let solid = match window {
            Some(w) => {
                chart
                    .draw_series(LineSeries::new(
                        points.iter().copied(),
                        ShapeStyle::from(color.mix(0.2)).stroke_width(1),
                    ))
                    .map_err(|e| e.to_string())?;
                moving_average(points, w)
            }
            None => points.clone(),
        };
        chart
            .draw_series(LineSeries::new(solid, style))
            .map_err(|e| e.to_string())?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        if window.is_none() && points.len() <= 60 {
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|&p| Circle::new(p, 3, ShapeStyle::from(color).filled())),
                )
                .map_err(|e| e.to_string())?;
        }
    }
    if let Some(w) = window {
        let (width, _) = area.dim_in_pixel();
        area.draw(&Text::new(
            format!("faint: each step; solid: mean of the last {w} steps"),
            (width as i32 - 420, 30),
            ("sans-serif", 14),
        ))
        .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .position(panel.legend)
        .draw()
        .map_err(|e| e.to_string())
}

/// Reads `metrics` and draws its curves to `out`; returns what was read.
pub fn plot_metrics(metrics: &Path, out: &Path) -> Result<Curves, PlotError> {
    let curves = Curves::read(metrics)?;
    curves.draw(out)?;
    Ok(curves)
}

/// Rank 0's redraw of `curves.png` beside `metrics` after a snapshot: a failure is printed and
/// training goes on (a plot is not worth a run).
pub(super) fn redraw(metrics: &Path, progress: &super::progress::Progress) {
    let out = metrics.with_file_name(CURVES_FILE);
    match plot_metrics(metrics, &out) {
        Ok(_) => tracing::debug!(png = %out.display(), "curves redrawn"),
        Err(e) => progress.println(&format!("warning: curves not drawn: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_stay_short() {
        assert_eq!(tick(&0.0), "0");
        assert_eq!(tick(&0.00005), "5.0e-5");
        assert_eq!(tick(&0.005), "0.0050");
        assert_eq!(tick(&1.5), "1.5");
        assert_eq!(tick(&2.0), "2");
        assert_eq!(padded(1.0, 1.0), 0.9..1.1);
        let avg = moving_average(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)], 2);
        assert_eq!(avg, vec![(0.0, 1.0), (1.0, 2.0), (2.0, 4.0)]);
    }

    #[test]
    fn rows_keep_the_last_of_a_step_and_skip_other_kinds() {
        let text = "{\"kind\":\"train\",\"step\":0,\"lr\":0.1,\"loss\":2,\"loss_cls\":1,\"loss_iou\":0.5,\"loss_dfl\":0.5}\n\
                    \n{\"kind\":\"data\",\"epoch\":0,\"bad_images\":1}\n\
                    {\"kind\":\"train\",\"step\":0,\"lr\":0.2,\"loss\":3,\"loss_cls\":null,\"loss_iou\":0.5,\"loss_dfl\":0.5}\n";
        let c = Curves::parse(text, Path::new("m.jsonl")).unwrap();
        assert_eq!(c.train_rows(), 1);
        assert_eq!(c.train[&0].lr, Some(0.2));
        assert_eq!(c.train[&0].losses, [Some(3.0), None, Some(0.5), Some(0.5)]);
    }
}
