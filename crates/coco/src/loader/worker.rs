//! Making one batch: read each sample (with the bad-image policy), run the transforms, collate.

use std::sync::atomic::Ordering;

use super::{BadImagePolicy, Batch, LoaderConfig, LoaderError, LoaderStats, Mode, Record, collate};
use crate::image::read_image;
use crate::transform::{AugRng, Sample, draw_batch_resize_from, eval_resize};

/// Decodes `records[index]`; under [`BadImagePolicy::Skip`] a bad image is counted, logged, and the
/// next record (cyclically) is taken instead, so batch sizes stay equal on every rank.
fn load_sample(
    records: &[Record],
    index: usize,
    config: &LoaderConfig,
    stats: &LoaderStats,
) -> Result<Sample, LoaderError> {
    let mut i = index;
    for _ in 0..records.len() {
        let r = &records[i];
        match read_image(&r.image_path) {
            Ok(image) => {
                return Ok(Sample::decoded(
                    image,
                    r.gt_bbox.clone(),
                    r.gt_class.clone(),
                    r.im_id,
                ));
            }
            Err(e) if config.mode == Mode::Train && config.bad_image == BadImagePolicy::Skip => {
                let n = stats.bad_images.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    image = %r.image_path.display(),
                    im_id = r.im_id,
                    skipped_so_far = n,
                    error = %e,
                    "skipping unreadable image"
                );
                i = (i + 1) % records.len();
            }
            Err(e) => return Err(LoaderError::Image(e)),
        }
    }
    Err(LoaderError::NoReadableImage(records.len()))
}

/// Builds batch number `batch_index` of `epoch` from dataset `indices`.
pub(super) fn make_batch(
    records: &[Record],
    indices: &[usize],
    batch_index: usize,
    epoch: u32,
    config: &LoaderConfig,
    stats: &LoaderStats,
) -> Result<Batch, LoaderError> {
    // Draws are keyed by the batch's place in the epoch and each sample's place in the global
    // batch (`rank · batch_size + slot`), not by the rank: the same global batch gets the same
    // draws (and the same BatchRandomResize size on every rank) whatever the number of ranks.
    let keys = [config.seed, epoch as u64, batch_index as u64];
    // BatchRandomResize draws from the batch's own stream, so drawing it first changes nothing and
    // lets each sample go from its cropped canvas straight to the batch size.
    let resize = (config.mode == Mode::Train)
        .then(|| draw_batch_resize_from(&mut AugRng::from_keys(&keys), &config.train_sizes));
    let mut samples = Vec::with_capacity(indices.len());
    for (slot, &index) in indices.iter().enumerate() {
        let mut sample = load_sample(records, index, config, stats)?;
        match resize {
            Some((size, interp)) => {
                let global_slot = (config.rank * config.batch_size + slot) as u64;
                let mut rng = AugRng::from_keys(&[keys[0], keys[1], keys[2], global_slot]);
                config
                    .transforms
                    .apply_and_resize(&mut sample, &mut rng, size, size, interp);
            }
            None => eval_resize(&mut sample),
        }
        samples.push(sample);
    }
    Ok(collate(batch_index, &samples, config.mean, config.std)?)
}
