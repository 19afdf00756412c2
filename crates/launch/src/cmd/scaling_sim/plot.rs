//! The figure of docs/scaling.md: scaling efficiency against the number of hosts, one colour per
//! link rate; with V100-speed compute a thick line for f32 gradients with overlap, thin ones for
//! bf16 with overlap and f32 without, a faint one for the ideal-ring model of the f32 case; the
//! H100-speed cases as triangles (f32) and squares (bf16), with overlap. Read from the
//! `scaling-sim` rows of a results file (JSON lines) and drawn like the training curves (plotters'
//! bitmap backend, the embedded font, the `png` crate).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde_json::Value;

/// A line of the figure: label, dtype, overlap, link rate in Gbit/s.
type SeriesKey = (String, String, bool, i64);

const W: u32 = 1000;
const H: u32 = 650;

/// Reads `results` and writes the PNG to `out`.
pub fn draw(results: &Path, out: &Path) -> Result<()> {
    let text = std::fs::read_to_string(results)
        .with_context(|| format!("reading {}", results.display()))?;
    // key -> [(hosts, efficiency %, model efficiency %)]
    let mut series: BTreeMap<SeriesKey, Vec<(f64, f64, f64)>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", results.display(), i + 1))?;
        if row["kind"] != "scaling-sim" {
            continue;
        }
        let (Some(hosts), Some(eff), Some(link)) = (
            row["hosts"].as_f64(),
            row["efficiency"].as_f64(),
            row["link_gbit"].as_f64(),
        ) else {
            continue;
        };
        let model = row["model_efficiency"].as_f64().unwrap_or(f64::NAN);
        let key = (
            row["label"].as_str().unwrap_or("?").to_string(),
            row["dtype"].as_str().unwrap_or("?").to_string(),
            row["overlap"].as_bool().unwrap_or(true),
            link.round() as i64,
        );
        series
            .entry(key)
            .or_default()
            .push((hosts, eff * 100.0, model * 100.0));
    }
    for points in series.values_mut() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    ringdet_train::trainer::plots::register_font()?;
    let mut rgb = vec![0u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (W, H)).into_drawing_area();
        root.fill(&WHITE)?;
        let x_max = series.values().flatten().map(|p| p.0).fold(8.0, f64::max);
        let y_min = series.values().flatten().map(|p| p.1).fold(90.0, f64::min);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Scaling efficiency, PP-YOLOE-s gradients, 8 GPUs per host (emulated)",
                ("sans-serif", 22),
            )
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0.5..x_max + 0.5, (y_min - 5.0).max(0.0)..101.0)?;
        chart
            .configure_mesh()
            .x_desc("hosts (x 8 GPUs)")
            .y_desc("efficiency, % (compute / step time)")
            .x_label_formatter(&|v: &f64| {
                if v.fract().abs() < 1e-9 {
                    format!("{v:.0}")
                } else {
                    String::new()
                }
            })
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.12))
            .draw()?;
        chart.draw_series(LineSeries::new(
            [(0.5, 95.0), (x_max + 0.5, 95.0)],
            ShapeStyle::from(BLACK.mix(0.4)).stroke_width(1),
        ))?;
        let color_of = |link: i64| match link {
            10 => BLUE.to_rgba(),
            25 => RED.to_rgba(),
            1 => GREEN.to_rgba(),
            _ => MAGENTA.to_rgba(),
        };
        for ((label, dtype, overlap, link), points) in &series {
            let base = color_of(*link);
            let xy = |p: &(f64, f64, f64)| (p.0, p.1);
            if label == "h100" {
                if !overlap {
                    continue;
                }
                let name = format!("H100-speed {link} Gbit/s {dtype}");
                if dtype == "bf16" {
                    chart
                        .draw_series(points.iter().map(|p| {
                            Rectangle::new(
                                [(p.0 - 0.07, p.1 - 0.6), (p.0 + 0.07, p.1 + 0.6)],
                                base.filled(),
                            )
                        }))?
                        .label(name)
                        .legend(move |(x, y)| {
                            Rectangle::new([(x + 4, y - 4), (x + 12, y + 4)], base.filled())
                        });
                } else {
                    chart
                        .draw_series(
                            points
                                .iter()
                                .map(|p| TriangleMarker::new(xy(p), 7, base.filled())),
                        )?
                        .label(name)
                        .legend(move |(x, y)| TriangleMarker::new((x + 8, y), 6, base.filled()));
                }
                continue;
            }
            let (color, width, name) = match (dtype.as_str(), overlap) {
                ("f32", true) => (base, 3, format!("{link} Gbit/s f32")),
                ("bf16", true) => (base.mix(0.7), 1, format!("{link} Gbit/s bf16")),
                (_, false) if dtype == "f32" => {
                    (base.mix(0.45), 1, format!("{link} Gbit/s f32, no overlap"))
                }
                _ => continue,
            };
            chart
                .draw_series(LineSeries::new(
                    points.iter().map(xy),
                    ShapeStyle::from(color).stroke_width(width),
                ))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], color.stroke_width(width))
                });
            chart.draw_series(
                points
                    .iter()
                    .map(|p| Circle::new(xy(p), 3 + width, ShapeStyle::from(color).filled())),
            )?;
            if dtype == "f32" && *overlap {
                let faint = base.mix(0.25);
                chart
                    .draw_series(LineSeries::new(
                        points.iter().map(|p| (p.0, p.2)),
                        ShapeStyle::from(faint).stroke_width(2),
                    ))?
                    .label(format!("{link} Gbit/s f32, ideal-ring model"))
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 18, y)], faint.stroke_width(2))
                    });
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()?;
        root.present()?;
    }
    let mut png_bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png_bytes, W, H);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&rgb)?;
        writer.finish()?;
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(out, png_bytes).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}
