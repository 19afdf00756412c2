//! Loading a COCO instances file (`instances_val2017.json` and friends) into [`Instances`].
//!
//! The top-level object is walked by hand; `images`, `annotations` and `categories` are parsed in
//! parallel chunks straight into compact records, every other key (info, licenses, ...) and every
//! other field (segmentation, ...) is skipped without being built in memory.
//!
//! `images` is required (an empty list is fine): a ground-truth file without it is almost always
//! the wrong file (a results list wrapped in an object, a truncated export), and pycocotools
//! cannot evaluate against it either (`COCO.loadRes` reads `dataset['images']`). `annotations`
//! and `categories` may be absent, as pycocotools' `COCO` index allows.

use super::array::{parse_array, parse_value, skip_ws};
use super::error::{JsonError, invalid};
use super::source::FileBytes;
use super::types::{Annotation, Category, ImageRecord};
use serde::de::IgnoredAny;
use std::path::Path;

/// The content of a COCO instances file that detection uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Instances {
    /// `images`, in file order.
    pub images: Vec<ImageRecord>,
    /// `annotations`, in file order.
    pub annotations: Vec<Annotation>,
    /// `categories`, in file order.
    pub categories: Vec<Category>,
}

impl Instances {
    /// Reads and parses the instances file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, JsonError> {
        let file = FileBytes::open(path.as_ref())?;
        parse_instances(&file)
    }

    /// Parses instances JSON held in memory; `name` stands for the file in error messages.
    pub fn from_slice(bytes: &[u8], name: &str) -> Result<Self, JsonError> {
        parse_instances(&FileBytes::from_vec(bytes.to_vec(), name))
    }
}

fn parse_instances(file: &FileBytes) -> Result<Instances, JsonError> {
    let bytes = file.bytes();
    let fail = |offset: usize, location: &str, message: &str| {
        invalid(
            &file.name,
            bytes,
            offset,
            location.to_string(),
            message.to_string(),
        )
    };
    let mut out = Instances::default();
    let mut seen: Vec<String> = Vec::new();
    let mut pos = skip_ws(bytes, 0);
    if bytes.get(pos) != Some(&b'{') {
        return Err(fail(
            pos,
            "",
            "expected a JSON object (a COCO instances file)",
        ));
    }
    pos = skip_ws(bytes, pos + 1);
    if bytes.get(pos) == Some(&b'}') {
        return finish(file, pos, &seen, out);
    }
    loop {
        if bytes.get(pos) != Some(&b'"') {
            return Err(fail(pos, "", "expected a key string"));
        }
        let (key, after_key) = parse_value::<String>(bytes, pos)
            .map_err(|e| fail(pos, "", &super::error::bare_message(&e)))?;
        if seen.contains(&key) {
            return Err(fail(pos, &key, "duplicate key"));
        }
        let colon = skip_ws(bytes, after_key);
        if bytes.get(colon) != Some(&b':') {
            return Err(fail(colon, &key, "expected `:` after the key"));
        }
        let value = skip_ws(bytes, colon + 1);
        let is_array = bytes.get(value) == Some(&b'[');
        let known = matches!(key.as_str(), "images" | "annotations" | "categories");
        if known && !is_array {
            return Err(fail(value, &key, "expected an array"));
        }
        let after_value = match key.as_str() {
            "images" => parse_array(file, value, "images").map(|(v, e)| {
                out.images = v;
                e
            })?,
            "annotations" => parse_array(file, value, "annotations").map(|(v, e)| {
                out.annotations = v;
                e
            })?,
            "categories" => parse_array(file, value, "categories").map(|(v, e)| {
                out.categories = v;
                e
            })?,
            _ => {
                parse_value::<IgnoredAny>(bytes, value)
                    .map_err(|e| fail(value, &key, &super::error::bare_message(&e)))?
                    .1
            }
        };
        seen.push(key);
        pos = skip_ws(bytes, after_value);
        match bytes.get(pos) {
            Some(b',') => pos = skip_ws(bytes, pos + 1),
            Some(b'}') => return finish(file, pos, &seen, out),
            _ => return Err(fail(pos, "", "expected `,` or `}` after a top-level value")),
        }
    }
}

/// Checks that the top-level object, closed by the `}` at `close`, had the required `images`
/// and that only whitespace follows it.
fn finish(
    file: &FileBytes,
    close: usize,
    seen: &[String],
    out: Instances,
) -> Result<Instances, JsonError> {
    let bytes = file.bytes();
    if !seen.iter().any(|k| k == "images") {
        return Err(invalid(
            &file.name,
            bytes,
            close,
            String::new(),
            "missing field `images` (a COCO instances file lists its images, even as `[]`; \
             is this a results file or another JSON file?)"
                .into(),
        ));
    }
    let rest = skip_ws(bytes, close + 1);
    if rest != bytes.len() {
        return Err(invalid(
            &file.name,
            bytes,
            rest,
            String::new(),
            "trailing characters after the top-level object".into(),
        ));
    }
    Ok(out)
}
