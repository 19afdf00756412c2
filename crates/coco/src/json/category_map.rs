//! COCO category ids (sparse: 1..90 for COCO's 80 classes) to contiguous class indices 0..K-1.

use super::types::Category;

/// Maps category ids to class indices in ascending id order, as PaddleDetection's `catid2clsid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryMap {
    /// Category ids in ascending order, without duplicates; index = class.
    ids: Vec<i64>,
}

impl CategoryMap {
    /// Builds the map from the `categories` of an instances file.
    pub fn new(categories: &[Category]) -> Self {
        let mut ids: Vec<i64> = categories.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        Self { ids }
    }

    /// Number of classes K.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when there are no categories.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Class index of a category id, or `None` for an id not among the categories.
    pub fn class_of(&self, category_id: i64) -> Option<usize> {
        self.ids.binary_search(&category_id).ok()
    }

    /// Category id of a class index, or `None` when `class >= K`.
    pub fn id_of(&self, class: usize) -> Option<i64> {
        self.ids.get(class).copied()
    }

    /// All category ids, ascending (the class order).
    pub fn ids(&self) -> &[i64] {
        &self.ids
    }
}
