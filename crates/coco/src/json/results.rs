//! Loading and writing a COCO results list (detections), the input of the evaluator.

use super::array::{parse_array, skip_ws};
use super::error::{JsonError, invalid};
use super::source::FileBytes;
use super::types::DetectionRecord;
use std::io::Write;
use std::path::Path;

/// Reads a results file: a JSON array of `{"image_id", "category_id", "bbox", "score"}` objects
/// (other fields are ignored). `[]` is valid and means no detections.
pub fn load_detections(path: impl AsRef<Path>) -> Result<Vec<DetectionRecord>, JsonError> {
    parse_detections(&FileBytes::open(path.as_ref())?)
}

/// Parses a results list held in memory; `name` stands for the file in error messages.
pub fn detections_from_slice(bytes: &[u8], name: &str) -> Result<Vec<DetectionRecord>, JsonError> {
    parse_detections(&FileBytes::from_vec(bytes.to_vec(), name))
}

fn parse_detections(file: &FileBytes) -> Result<Vec<DetectionRecord>, JsonError> {
    let bytes = file.bytes();
    let open = skip_ws(bytes, 0);
    if bytes.get(open) != Some(&b'[') {
        return Err(invalid(
            &file.name,
            bytes,
            open,
            String::new(),
            "expected a JSON array of detections".into(),
        ));
    }
    let (detections, end) = parse_array::<DetectionRecord>(file, open, "detections")?;
    let rest = skip_ws(bytes, end);
    if rest != bytes.len() {
        return Err(invalid(
            &file.name,
            bytes,
            rest,
            String::new(),
            "trailing characters after the array".into(),
        ));
    }
    Ok(detections)
}

/// Writes detections as a COCO results list (one record per line), readable by pycocotools.
pub fn write_detections(
    mut out: impl Write,
    detections: &[DetectionRecord],
) -> std::io::Result<()> {
    out.write_all(b"[")?;
    for (i, d) in detections.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        out.write_all(b"\n")?;
        serde_json::to_writer(&mut out, d)?;
    }
    out.write_all(b"\n]\n")
}
