//! The figure of docs/scaling.md: scaling efficiency against the number of hosts, one line per
//! link rate (f32 and bf16 gradients with overlap, f32 without), the H100-speed cases as points,
//! from the `scaling-sim` rows of a results file (JSON lines). Drawn like the training curves
//! (plotters' bitmap backend, the embedded font, the `png` crate).

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
    // (label, dtype, overlap, link) -> [(hosts, efficiency)]
    let mut series: BTreeMap<SeriesKey, Vec<(f64, f64)>> = BTreeMap::new();
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
        let key = (
            row["label"].as_str().unwrap_or("?").to_string(),
            row["dtype"].as_str().unwrap_or("?").to_string(),
            row["overlap"].as_bool().unwrap_or(true),
            link.round() as i64,
        );
        series.entry(key).or_default().push((hosts, eff * 100.0));
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
                "Scaling efficiency, PP-YOLOE-s, 8 GPUs per host (emulated)",
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
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.12))
            .draw()?;
        chart.draw_series(LineSeries::new(
            [(0.5, 95.0), (x_max + 0.5, 95.0)],
            ShapeStyle::from(BLACK.mix(0.4)).stroke_width(1),
        ))?;
        let palette = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
        for (i, ((label, dtype, overlap, link), mut points)) in series.into_iter().enumerate() {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let color = palette[i % palette.len()].to_rgba();
            let width = if overlap { 2 } else { 1 };
            let name = format!(
                "{label} {link} Gbit/s {dtype}{}",
                if overlap { "" } else { " no overlap" }
            );
            chart
                .draw_series(LineSeries::new(
                    points.clone(),
                    ShapeStyle::from(color).stroke_width(width),
                ))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart.draw_series(
                points
                    .iter()
                    .map(|&p| Circle::new(p, 4, ShapeStyle::from(color).filled())),
            )?;
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
