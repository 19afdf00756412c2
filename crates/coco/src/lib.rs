//! COCO detection data for training and evaluation.
