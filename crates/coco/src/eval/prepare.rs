//! pycocotools' `_prepare`: which ground truths and detections take part, grouped per image in the
//! order pycocotools visits them (images by ascending id, then file order).

use super::id_index::IdIndex;
use super::{EvalError, UnknownImages};
use crate::json::{DetectionRecord, Instances};
use std::collections::HashMap;

/// Ground truths and detections grouped per image (rank in ascending image id).
pub(crate) struct Prepared {
    pub(crate) images: IdIndex,
    pub(crate) categories: IdIndex,
    /// `gt[gt_start[i]..gt_start[i+1]]` = (annotation index, category rank) of image i.
    pub(crate) gt_start: Vec<usize>,
    pub(crate) gt: Vec<(u32, u32)>,
    /// `dt[dt_start[i]..dt_start[i+1]]` = (detection index, category rank) of image i, in file order.
    pub(crate) dt_start: Vec<usize>,
    pub(crate) dt: Vec<(u32, u32)>,
    /// Detections on image ids absent from the ground truth that were dropped.
    pub(crate) dropped_unknown: usize,
}

/// Stable counting sort of `(image rank, payload)` pairs into per-image runs.
fn group_by_image(n_images: usize, items: &[(usize, (u32, u32))]) -> (Vec<usize>, Vec<(u32, u32)>) {
    let mut start = vec![0usize; n_images + 1];
    for &(i, _) in items {
        start[i + 1] += 1;
    }
    for i in 0..n_images {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut out = vec![(0u32, 0u32); items.len()];
    for &(i, payload) in items {
        out[fill[i]] = payload;
        fill[i] += 1;
    }
    (start, out)
}

pub(crate) fn prepare(
    gt: &Instances,
    detections: &[DetectionRecord],
    unknown: UnknownImages,
) -> Result<Prepared, EvalError> {
    let images = IdIndex::new(gt.images.iter().map(|im| im.id));
    let categories = IdIndex::new(gt.categories.iter().map(|c| c.id));
    let n_images = images.len();

    // Every detection must lie on a GT image (pycocotools asserts it in loadRes).
    let mut dropped_unknown = 0usize;
    let mut first_unknown = None;
    let mut dt_items = Vec::with_capacity(detections.len());
    for (index, d) in detections.iter().enumerate() {
        let Some(i) = images.get(d.image_id) else {
            dropped_unknown += 1;
            first_unknown.get_or_insert(index);
            continue;
        };
        // Detections of categories absent from the GT are silently dropped, as in pycocotools.
        if let Some(k) = categories.get(d.category_id) {
            dt_items.push((i, (index as u32, k as u32)));
        }
    }
    if let (Some(index), UnknownImages::Error) = (first_unknown, unknown) {
        return Err(EvalError::UnknownImage {
            index,
            image_id: detections[index].image_id,
            count: dropped_unknown,
        });
    }

    // GT annotations are looked up by id (`COCO.anns[id]`): with duplicate ids the later record
    // stands in for every occurrence, as in pycocotools.
    let anns = &gt.annotations;
    let mut by_id: Vec<(i64, u32)> = anns
        .iter()
        .enumerate()
        .map(|(j, a)| (a.id, j as u32))
        .collect();
    by_id.sort_unstable();
    let last_of: HashMap<i64, u32> = by_id
        .windows(2)
        .filter(|w| w[0].0 == w[1].0)
        .map(|w| (w[1].0, w[1].1))
        .collect();
    let mut visit: Vec<(usize, (u32, u32))> = anns
        .iter()
        .enumerate()
        .filter_map(|(j, a)| {
            let i = images.get(a.image_id)?;
            categories.get(a.category_id)?;
            Some((i, (j as u32, 0)))
        })
        .collect();
    if !last_of.is_empty() {
        // Visit order (image, file order) stays; the record used is the last with that id.
        let (start, order) = group_by_image(n_images, &visit);
        visit = Vec::with_capacity(order.len());
        for i in 0..n_images {
            for &(j, _) in &order[start[i]..start[i + 1]] {
                let r = last_of.get(&anns[j as usize].id).copied().unwrap_or(j);
                let a = &anns[r as usize];
                if let (Some(ti), Some(_)) = (images.get(a.image_id), categories.get(a.category_id))
                {
                    visit.push((ti, (r, 0)));
                }
            }
        }
    }
    for item in &mut visit {
        let a = &anns[item.1.0 as usize];
        item.1.1 = categories.get(a.category_id).unwrap_or(0) as u32;
    }
    let (gt_start, gt_items) = group_by_image(n_images, &visit);
    let (dt_start, dt_grouped) = group_by_image(n_images, &dt_items);
    Ok(Prepared {
        images,
        categories,
        gt_start,
        gt: gt_items,
        dt_start,
        dt: dt_grouped,
        dropped_unknown,
    })
}
