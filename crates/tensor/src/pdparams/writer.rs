//! Writes a dict of name -> numpy array as `paddle.save` does, so that `paddle.load` (and so
//! PaddleDetection's `-o weights=`) reads it: protocol 3 (every Python 3 reads it), each array
//! as numpy pickles it (`_reconstruct` + `BUILD` with shape, dtype and raw little-endian bytes).

use super::numpy::descr_for;
use super::opcodes as op;
use crate::{Result, Tensor, TensorError};

fn unicode(out: &mut Vec<u8>, s: &str) {
    out.push(op::BINUNICODE);
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn global(out: &mut Vec<u8>, module: &str, name: &str) {
    out.push(op::GLOBAL);
    out.extend_from_slice(module.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
}

fn int(out: &mut Vec<u8>, v: i64) {
    match v {
        0..=0xff => out.extend_from_slice(&[op::BININT1, v as u8]),
        0x100..=0xffff => {
            out.push(op::BININT2);
            out.extend_from_slice(&(v as u16).to_le_bytes());
        }
        _ if i32::try_from(v).is_ok() => {
            out.push(op::BININT);
            out.extend_from_slice(&(v as i32).to_le_bytes());
        }
        _ => {
            out.extend_from_slice(&[op::LONG1, 8]);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

fn bytes_header(out: &mut Vec<u8>, n: usize) {
    match u32::try_from(n) {
        Ok(n) => {
            out.push(op::BINBYTES);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Err(_) => {
            out.push(op::BINBYTES8);
            out.extend_from_slice(&(n as u64).to_le_bytes());
        }
    }
}

/// The pickle of one array, up to (not including) its data bytes; the data follows, then
/// [`array_tail`].
fn array_head(out: &mut Vec<u8>, t: &Tensor, data_len: usize) {
    // _reconstruct(ndarray, (0,), b'b')
    global(out, "numpy.core.multiarray", "_reconstruct");
    global(out, "numpy", "ndarray");
    int(out, 0);
    out.push(op::TUPLE1);
    out.extend_from_slice(&[op::SHORT_BINBYTES, 1, b'b']);
    out.push(op::TUPLE3);
    out.push(op::REDUCE);
    // BUILD state: (1, shape, dtype, False, data)
    out.push(op::MARK);
    int(out, 1);
    out.push(op::MARK);
    for &d in t.shape() {
        int(out, d as i64);
    }
    out.push(op::TUPLE);
    let (descr, order) = descr_for(t.dtype());
    global(out, "numpy", "dtype");
    unicode(out, descr);
    out.extend_from_slice(&[op::NEWFALSE, op::NEWTRUE, op::TUPLE3, op::REDUCE]);
    out.push(op::MARK);
    int(out, 3);
    unicode(out, order);
    out.extend_from_slice(&[op::NONE, op::NONE, op::NONE]);
    int(out, -1);
    int(out, -1);
    int(out, 0);
    out.extend_from_slice(&[op::TUPLE, op::BUILD, op::NEWFALSE]);
    bytes_header(out, data_len);
}

fn array_tail(out: &mut Vec<u8>) {
    out.extend_from_slice(&[op::TUPLE, op::BUILD]);
}

/// A value other than an array in a Paddle state dict: what an optimizer's `state_dict()` holds
/// besides its accumulators (`last_epoch`, `LR_Scheduler: {last_epoch, last_lr}`).
#[derive(Clone, Debug, PartialEq)]
pub enum Extra {
    /// A Python int.
    Int(i64),
    /// A Python float.
    Float(f64),
    /// A Python str.
    Str(String),
    /// A dict of str -> value.
    Dict(Vec<(String, Extra)>),
}

fn extra(out: &mut Vec<u8>, v: &Extra) {
    match v {
        Extra::Int(i) => int(out, *i),
        Extra::Float(f) => {
            out.push(op::BINFLOAT);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Extra::Str(s) => unicode(out, s),
        Extra::Dict(items) => {
            out.extend_from_slice(&[op::EMPTY_DICT, op::MARK]);
            for (k, v) in items {
                unicode(out, k);
                extra(out, v);
            }
            out.push(op::SETITEMS);
        }
    }
}

/// Writes `tensors` (in this order) to `path` as a Paddle state-dict pickle, atomically
/// (temporary file, fsync, rename). Names must be unique.
pub fn save(path: impl AsRef<std::path::Path>, tensors: &[(&str, &Tensor)]) -> Result<()> {
    save_with(path, tensors, &[])
}

/// [`save`], followed by the entries `extras` (int, float, nested dict) in the same top-level
/// dict: an optimizer state as PaddleDetection's `save_model` writes it.
pub fn save_with(
    path: impl AsRef<std::path::Path>,
    tensors: &[(&str, &Tensor)],
    extras: &[(&str, Extra)],
) -> Result<()> {
    use std::io::Write;
    let path = path.as_ref();
    let mut seen = std::collections::HashSet::new();
    let mut names = tensors
        .iter()
        .map(|(n, _)| *n)
        .chain(extras.iter().map(|(n, _)| *n));
    if let Some(name) = names.find(|n| !seen.insert(*n)) {
        return Err(TensorError::Pickle {
            path: path.to_path_buf(),
            offset: None,
            msg: format!("tensor name {name:?} is repeated"),
        });
    }
    crate::safetensors::atomic_write(path, |f| {
        f.write_all(&[op::PROTO, 3, op::EMPTY_DICT, op::MARK])?;
        let mut head = Vec::with_capacity(256);
        for (name, t) in tensors {
            let data = t
                .to_contiguous_bytes()
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            head.clear();
            unicode(&mut head, name);
            array_head(&mut head, t, data.len());
            f.write_all(&head)?;
            f.write_all(&data)?;
            head.clear();
            array_tail(&mut head);
            f.write_all(&head)?;
        }
        for (name, v) in extras {
            head.clear();
            unicode(&mut head, name);
            extra(&mut head, v);
            f.write_all(&head)?;
        }
        f.write_all(&[op::SETITEMS, op::STOP])
    })
}
