//! safetensors files: read through a memory map (tensors borrow the mapping, zero copy) with
//! every header field checked, and written atomically (temp file, fsync, rename).

use crate::storage::HostStorage;
use crate::{DType, Result, Tensor, TensorError};
use memmap2::Mmap;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Headers larger than this are refused rather than allocated.
pub const MAX_HEADER_BYTES: u64 = 100 << 20;

/// One tensor's entry in the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The element type.
    pub dtype: DType,
    /// Size of each dim, outermost first.
    pub shape: Vec<usize>,
    /// Byte range inside the data section.
    pub data_offsets: (usize, usize),
}

/// An open safetensors file: a checked header over a read-only memory map.
pub struct SafeTensors {
    path: PathBuf,
    map: Arc<Mmap>,
    data_start: usize,
    names: Vec<String>,
    infos: HashMap<String, TensorInfo>,
    metadata: BTreeMap<String, String>,
}

fn bad(path: &Path, msg: impl Into<String>) -> TensorError {
    TensorError::SafeTensors {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> TensorError + '_ {
    move |error| TensorError::Io {
        path: path.to_path_buf(),
        error,
    }
}

impl SafeTensors {
    /// Maps `path` and checks its header: dtypes, shapes and offsets must agree and stay inside
    /// the file, and no two tensors may overlap.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(io(path))?;
        // SAFETY: the mapping is read-only; like every reader of memory-mapped files we rely on
        // nobody truncating the file while it is open.
        let map = unsafe { Mmap::map(&file) }.map_err(io(path))?;
        Self::from_map(path, Arc::new(map))
    }

    fn from_map(path: &Path, map: Arc<Mmap>) -> Result<Self> {
        let (data_start, header) = parse_header_bytes(&map).map_err(|m| bad(path, m))?;
        let data_len = map.len() - data_start;
        let (names, infos, metadata) =
            parse_header_json(header, data_len).map_err(|m| bad(path, m))?;
        Ok(SafeTensors {
            path: path.to_path_buf(),
            map,
            data_start,
            names,
            infos,
            metadata,
        })
    }

    /// The file this was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Tensor names in file order (by data offset).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }
    /// Number of tensors in the file.
    pub fn len(&self) -> usize {
        self.names.len()
    }
    /// Whether the file holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
    /// The header entry of tensor `name`; `None` when the file has none by that name.
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.infos.get(name)
    }
    /// The free-form `__metadata__` map of the header.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    fn entry(&self, name: &str) -> Result<&TensorInfo> {
        self.infos
            .get(name)
            .ok_or_else(|| bad(&self.path, format!("no tensor named {name:?}")))
    }

    /// The raw little-endian bytes of a tensor.
    pub fn bytes(&self, name: &str) -> Result<&[u8]> {
        let (b, e) = self.entry(name)?.data_offsets;
        Ok(&self.map[self.data_start + b..self.data_start + e])
    }

    /// A host tensor that borrows the mapping (no copy).
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        let info = self.entry(name)?;
        let (b, e) = info.data_offsets;
        let storage = HostStorage::Mapped {
            map: self.map.clone(),
            start: self.data_start + b,
            len: e - b,
        };
        Tensor::from_host_storage(storage, info.dtype, &info.shape)
    }

    /// Like [`tensor`](Self::tensor), but first checks dtype and shape, naming the tensor on
    /// a mismatch.
    pub fn tensor_checked(&self, name: &str, dtype: DType, shape: &[usize]) -> Result<Tensor> {
        let info = self.entry(name)?;
        if info.dtype != dtype || info.shape != shape {
            return Err(bad(
                &self.path,
                format!(
                    "tensor {name:?} is {} {:?}, expected {dtype} {shape:?}",
                    info.dtype, info.shape
                ),
            ));
        }
        self.tensor(name)
    }
}

/// Splits a file into (data start, header JSON bytes).
fn parse_header_bytes(file: &[u8]) -> std::result::Result<(usize, &[u8]), String> {
    let Some(len_bytes) = file.get(..8) else {
        return Err(format!(
            "{} bytes: too short for a safetensors header",
            file.len()
        ));
    };
    let n = u64::from_le_bytes(len_bytes.try_into().map_err(|_| "short header")?);
    if n > MAX_HEADER_BYTES || n > (file.len() - 8) as u64 {
        return Err(format!(
            "header length {n} exceeds the file ({} bytes) or the {MAX_HEADER_BYTES}-byte limit",
            file.len()
        ));
    }
    let end = 8 + n as usize;
    Ok((end, &file[8..end]))
}

type Parsed = (
    Vec<String>,
    HashMap<String, TensorInfo>,
    BTreeMap<String, String>,
);

fn parse_header_json(header: &[u8], data_len: usize) -> std::result::Result<Parsed, String> {
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| format!("header is not a JSON object: {e}"))?;
    let mut metadata = BTreeMap::new();
    let mut entries = Vec::new();
    for (name, v) in json {
        if name == "__metadata__" {
            let m = v.as_object().ok_or("__metadata__ is not an object")?;
            for (k, v) in m {
                let s = v
                    .as_str()
                    .ok_or(format!("__metadata__.{k} is not a string"))?;
                metadata.insert(k.clone(), s.to_string());
            }
            continue;
        }
        entries.push((name.clone(), parse_entry(&name, &v, data_len)?));
    }
    entries.sort_by_key(|(_, i)| i.data_offsets);
    for w in entries.windows(2) {
        if w[1].1.data_offsets.0 < w[0].1.data_offsets.1 {
            return Err(format!("tensors {:?} and {:?} overlap", w[0].0, w[1].0));
        }
    }
    let names = entries.iter().map(|(n, _)| n.clone()).collect();
    Ok((names, entries.into_iter().collect(), metadata))
}

fn parse_entry(
    name: &str,
    v: &serde_json::Value,
    data_len: usize,
) -> std::result::Result<TensorInfo, String> {
    let field = |f: &str| v.get(f).ok_or(format!("{name}: missing field {f:?}"));
    let dtype_name = field("dtype")?
        .as_str()
        .ok_or(format!("{name}.dtype: not a string"))?;
    let dtype = DType::from_safetensors_name(dtype_name)
        .ok_or(format!("{name}.dtype: {dtype_name} is not supported"))?;
    let nums = |f: &str| -> std::result::Result<Vec<usize>, String> {
        field(f)?
            .as_array()
            .ok_or(format!("{name}.{f}: not an array"))?
            .iter()
            .map(|x| {
                x.as_u64()
                    .and_then(|x| usize::try_from(x).ok())
                    .ok_or(format!("{name}.{f}: {x} is not a non-negative integer"))
            })
            .collect()
    };
    let shape = nums("shape")?;
    let offsets = nums("data_offsets")?;
    let [b, e] = offsets[..] else {
        return Err(format!(
            "{name}.data_offsets: expected 2 numbers, got {}",
            offsets.len()
        ));
    };
    if b > e || e > data_len {
        return Err(format!(
            "{name}.data_offsets: [{b}, {e}] outside the data section of {data_len} bytes"
        ));
    }
    let bytes = shape
        .iter()
        .try_fold(dtype.size(), |a, &d| a.checked_mul(d))
        .ok_or(format!("{name}.shape: {shape:?} overflows"))?;
    if bytes != e - b {
        return Err(format!(
            "{name}: shape {shape:?} of {dtype} needs {bytes} bytes, data_offsets hold {}",
            e - b
        ));
    }
    Ok(TensorInfo {
        dtype,
        shape,
        data_offsets: (b, e),
    })
}

/// Writes `tensors` (in the given order) and `metadata` to `path` atomically: a temporary file
/// in the same folder is written and fsynced, then renamed over `path`.
pub fn save(
    path: impl AsRef<Path>,
    tensors: &[(&str, &Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let path = path.as_ref();
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert(
            "__metadata__".into(),
            serde_json::to_value(metadata).unwrap_or_default(),
        );
    }
    let mut datas = Vec::with_capacity(tensors.len());
    let mut offset = 0usize;
    for (name, t) in tensors {
        if *name == "__metadata__" || header.contains_key(*name) {
            return Err(bad(
                path,
                format!("tensor name {name:?} is reserved or repeated"),
            ));
        }
        let bytes = t.to_contiguous_bytes()?;
        header.insert(
            name.to_string(),
            serde_json::json!({
                "dtype": t.dtype().safetensors_name(),
                "shape": t.shape(),
                "data_offsets": [offset, offset + bytes.len()],
            }),
        );
        offset += bytes.len();
        datas.push(bytes);
    }
    let mut json = serde_json::to_vec(&header).map_err(|e| bad(path, e.to_string()))?;
    // Pad with spaces so the data section starts 8-byte aligned (zero-copy f32/i64 reads).
    json.resize(json.len().next_multiple_of(8), b' ');
    atomic_write(path, |f| {
        f.write_all(&(json.len() as u64).to_le_bytes())?;
        f.write_all(&json)?;
        datas.iter().try_for_each(|d| f.write_all(d))
    })
}

/// Writes a file through a temporary sibling, fsync and rename, then fsyncs the folder.
pub fn atomic_write(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| bad(path, "not a file path"))?
        .to_string_lossy();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut w = std::io::BufWriter::new(File::create(&tmp)?);
        write(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parser_rejects_garbage_without_panicking() {
        for (bytes, ok) in [
            (&b""[..], false),
            (&b"\x01"[..], false),
            (&b"\xff\xff\xff\xff\xff\xff\xff\xff{}"[..], false),
            (&b"\x02\0\0\0\0\0\0\0{}"[..], true),
        ] {
            let r =
                parse_header_bytes(bytes).and_then(|(s, h)| parse_header_json(h, bytes.len() - s));
            assert_eq!(r.is_ok(), ok, "{bytes:?}");
        }
        let e = parse_header_json(
            br#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
            16,
        )
        .unwrap_err();
        assert!(e.contains("needs 12 bytes"), "{e}");
        let e = parse_header_json(
            br#"{"a":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1]}}"#,
            16,
        )
        .unwrap_err();
        assert!(e.contains("BOOL is not supported"), "{e}");
        // F64 is one of the workspace's dtypes (exactness checks, f64 references).
        assert!(
            parse_header_json(
                br#"{"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#,
                16,
            )
            .is_ok()
        );
    }

    proptest::proptest! {
        #[test]
        fn header_parser_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            if let Ok((s, h)) = parse_header_bytes(&bytes) {
                let _ = parse_header_json(h, bytes.len() - s);
            }
        }
        #[test]
        fn json_headers_never_panic(s in r#"\{("[a-z]{1,3}":\{"dtype":"(F32|U8|I64)","shape":\[[0-9]{1,3}(,[0-9])?\],"data_offsets":\[[0-9]{1,3},[0-9]{1,3}\]\},?){0,3}\}"#) {
            let _ = parse_header_json(s.as_bytes(), 512);
        }
    }
}
