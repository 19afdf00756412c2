//! `ringdet make-dataset shapes`: writes the seeded synthetic detection dataset (JPEG + COCO JSON).
//! An existing dataset is not overwritten without `--force`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;
use ringdet_coco::synth::{MIN_SIZE, SPLITS, ShapesConfig, instances_path, write_shapes_dataset};

/// Arguments of `ringdet make-dataset`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    kind: Kind,
}

#[derive(clap::Subcommand)]
enum Kind {
    /// Shapes (circle, square, triangle, diamond, cross, ring, ellipse) on textured, noisy
    /// backgrounds, laid out like COCO: train2017/, val2017/, annotations/instances_*.json.
    Shapes(ShapesArgs),
}

#[derive(clap::Args)]
struct ShapesArgs {
    /// Output folder (created if missing); default `dataset/shapes`, or `dataset/coco` with
    /// `--layout coco`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// `coco` writes to `dataset/coco/` (where PaddleDetection's COCO configs read), so an
    /// unchanged COCO config trains on the synthetic data (its 80 classes cover the 7 shapes).
    #[arg(long, value_enum, default_value_t = Layout::Shapes)]
    layout: Layout,
    /// Number of train images.
    #[arg(long, default_value_t = 1000)]
    train: usize,
    /// Number of val images.
    #[arg(long, default_value_t = 200)]
    val: usize,
    /// Seed; the same seed writes the same files.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Nominal image side in pixels (at least 16); each side is drawn from [0.75, 1.25] times it.
    #[arg(long, default_value_t = 320)]
    size: usize,
    /// JPEG quality (1..=100).
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u8).range(1..=100))]
    quality: u8,
    /// Smallest object extent in pixels (objects are drawn log-uniformly from it to 70% of the
    /// short side).
    #[arg(long = "min_object", alias = "min-object", default_value_t = ringdet_coco::synth::DEFAULT_MIN_OBJECT)]
    min_object: f64,
    /// Overwrite a dataset already in the output folder.
    #[arg(long)]
    force: bool,
}

/// Where the dataset goes by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Layout {
    /// `dataset/shapes/`.
    Shapes,
    /// `dataset/coco/`.
    Coco,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Kind::Shapes(mut a) = args.kind;
    let out = a.out.take().unwrap_or_else(|| match a.layout {
        Layout::Shapes => PathBuf::from("dataset/shapes"),
        Layout::Coco => PathBuf::from("dataset/coco"),
    });
    if a.size < MIN_SIZE {
        bail!(
            "--size {}: the smallest size the shapes dataset draws is {MIN_SIZE}",
            a.size
        );
    }
    if !a.force {
        for split in SPLITS {
            let existing = instances_path(&out, split);
            if existing.exists() {
                bail!(
                    "{} already exists: pass --force to overwrite the dataset in {}",
                    existing.display(),
                    out.display()
                );
            }
        }
    }
    let config = ShapesConfig {
        out,
        train: a.train,
        val: a.val,
        seed: a.seed,
        size: a.size,
        quality: a.quality,
        min_object: a.min_object,
    };
    let start = Instant::now();
    let summary = write_shapes_dataset(&config)?;
    let secs = start.elapsed().as_secs_f64();
    let images = summary.images[0] + summary.images[1];
    eprintln!(
        "wrote {} train images ({} boxes) and {} val images ({} boxes) to {} in {:.2} s ({:.0} images/min)",
        summary.images[0],
        summary.annotations[0],
        summary.images[1],
        summary.annotations[1],
        config.out.display(),
        secs,
        images as f64 / secs.max(1e-9) * 60.0
    );
    Ok(())
}
