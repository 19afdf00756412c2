//! Serde types of the COCO instances file and of a COCO results list.
//!
//! Only the fields detection needs are kept; everything else (segmentation, keypoints, info, licenses,
//! coco_url, ...) is skipped without being materialised, which keeps an instances_train2017-sized file
//! at a few dozen bytes per record in memory.

use serde::{Deserialize, Deserializer, Serialize, de};
use std::fmt;

/// One entry of `images`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The image id that annotations and detections refer to.
    pub id: i64,
    /// Width in pixels; 0 when the file omits it.
    #[serde(default)]
    pub width: u32,
    /// Height in pixels; 0 when the file omits it.
    #[serde(default)]
    pub height: u32,
    /// Path of the image relative to the image directory; empty when the file omits it.
    #[serde(default)]
    pub file_name: String,
}

/// One entry of `annotations` (ground truth).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    /// Annotation id (unique in a well-formed file).
    pub id: i64,
    /// Id of the image this box lies in.
    pub image_id: i64,
    /// COCO category id (not the contiguous class index; see [`super::CategoryMap`]).
    pub category_id: i64,
    /// `[x, y, width, height]` in pixels, continuous coordinates.
    #[serde(deserialize_with = "bbox_xywh")]
    pub bbox: [f64; 4],
    /// Object area (for COCO the segmentation area, not `w*h`); decides the small/medium/large range.
    pub area: f64,
    /// Crowd region: ignored in evaluation, dropped in training.
    #[serde(deserialize_with = "flag", serialize_with = "flag_as_int")]
    pub iscrowd: bool,
    /// The optional `ignore` flag: PaddleDetection drops such boxes in training; pycocotools overwrites it
    /// with `iscrowd`, so it has no effect in evaluation.
    #[serde(default, deserialize_with = "flag", serialize_with = "flag_as_int")]
    pub ignore: bool,
}

/// One entry of `categories`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Category {
    /// COCO category id.
    pub id: i64,
    /// Human-readable name; empty when the file omits it.
    #[serde(default)]
    pub name: String,
    /// Parent category name; empty when the file omits it.
    #[serde(default)]
    pub supercategory: String,
}

/// One entry of a COCO results file (a detection), as written by `json.dump` of a results list.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DetectionRecord {
    /// Id of the ground-truth image the detection belongs to.
    pub image_id: i64,
    /// COCO category id.
    pub category_id: i64,
    /// `[x, y, width, height]` in pixels.
    #[serde(deserialize_with = "bbox_xywh")]
    pub bbox: [f64; 4],
    /// Confidence; higher ranks first.
    pub score: f64,
}

/// Reads exactly four numbers, with the error `expected 4 numbers, got N` otherwise.
fn bbox_xywh<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[f64; 4], D::Error> {
    struct BoxVisitor;
    impl<'de> de::Visitor<'de> for BoxVisitor {
        type Value = [f64; 4];
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of 4 numbers [x, y, width, height]")
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<[f64; 4], A::Error> {
            let mut out = [0.0; 4];
            let mut count = 0usize;
            while let Some(v) = seq.next_element::<f64>()? {
                if count < 4 {
                    out[count] = v;
                }
                count += 1;
            }
            if count != 4 {
                return Err(de::Error::custom(format_args!(
                    "expected 4 numbers, got {count}"
                )));
            }
            Ok(out)
        }
    }
    deserializer.deserialize_seq(BoxVisitor)
}

/// Reads a 0/1 integer or a boolean (files use both for `iscrowd` and `ignore`).
fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    struct FlagVisitor;
    impl de::Visitor<'_> for FlagVisitor {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("0, 1, true or false")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
            Ok(v != 0)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
            Ok(v != 0)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
            Ok(v != 0.0)
        }
    }
    deserializer.deserialize_any(FlagVisitor)
}

fn flag_as_int<S: serde::Serializer>(v: &bool, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u8(u8::from(*v))
}
