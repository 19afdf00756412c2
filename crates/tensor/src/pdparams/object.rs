//! The objects a Paddle pickle builds, held in an arena so that the memo and the stack share
//! them as Python does (a dict filled after it was memoized is the same dict through both).

use std::ops::Range;

use super::globals::Global;

/// Index of an object in the [`Arena`].
pub type Id = usize;

/// Bytes of a `bytes` object: a range of the file (protocol 3-4 `BINBYTES`), or decoded
/// (protocol 2 writes array data as a latin-1 string passed to `_codecs.encode`).
#[derive(Clone, Debug)]
pub enum ByteSrc {
    /// Bytes `range` of the input.
    File(Range<usize>),
    /// Decoded bytes.
    Owned(Vec<u8>),
}

/// A numpy dtype object: the type code numpy pickles (`f4`, `i8`, `u2`, ...) and the byte
/// order its `BUILD` state sets (`<`, `>`, `|`, `=`).
#[derive(Clone, Debug)]
pub struct DTypeObj {
    /// `kind + itemsize` as numpy pickles it, e.g. `f4`.
    pub descr: String,
    /// Byte order character; `<` until a state says otherwise.
    pub byteorder: char,
    /// Whether the state named fields (a structured dtype, which no weights file holds).
    pub structured: bool,
}

/// A numpy array's pickled state (`ndarray.__setstate__`): shape, dtype object, order, data.
#[derive(Clone, Debug)]
pub struct ArrayState {
    /// Dims, outermost first.
    pub shape: Vec<usize>,
    /// The dtype object.
    pub dtype: Id,
    /// Whether the data is in column-major order.
    pub fortran: bool,
    /// The data object (`bytes`; a list for object arrays, which are refused).
    pub data: Id,
}

/// One object.
#[derive(Clone, Debug)]
pub enum Obj {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits in i64.
    Int(i64),
    /// An integer of this many bytes that does not fit in i64 (kept only to be reported).
    BigInt(usize),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A bytes object.
    Bytes(ByteSrc),
    /// A tuple.
    Tuple(Vec<Id>),
    /// A list.
    List(Vec<Id>),
    /// A dict (or OrderedDict) in insertion order.
    Dict(Vec<(Id, Id)>),
    /// An allow-listed global.
    Global(Global),
    /// An array made by `_reconstruct`, with its state once `BUILD` gave it.
    Array(Option<ArrayState>),
    /// A numpy dtype.
    DType(DTypeObj),
    /// A numpy scalar (`numpy.core.multiarray.scalar(dtype, bytes)`).
    Scalar {
        /// The dtype object.
        dtype: Id,
        /// The bytes object.
        data: Id,
    },
}

impl Obj {
    /// A short name of the object's type for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Obj::None => "None",
            Obj::Bool(_) => "bool",
            Obj::Int(_) | Obj::BigInt(_) => "int",
            Obj::Float(_) => "float",
            Obj::Str(_) => "str",
            Obj::Bytes(_) => "bytes",
            Obj::Tuple(_) => "tuple",
            Obj::List(_) => "list",
            Obj::Dict(_) => "dict",
            Obj::Global(_) => "global",
            Obj::Array(_) => "numpy array",
            Obj::DType(_) => "numpy dtype",
            Obj::Scalar { .. } => "numpy scalar",
        }
    }
}

/// Every object of one pickle.
#[derive(Debug, Default)]
pub struct Arena {
    objs: Vec<Obj>,
}

impl Arena {
    /// Adds an object and returns its id.
    pub fn push(&mut self, obj: Obj) -> Id {
        self.objs.push(obj);
        self.objs.len() - 1
    }
    /// The object `id` (ids come only from `push`).
    pub fn get(&self, id: Id) -> &Obj {
        &self.objs[id]
    }
    /// The object `id`, writable.
    pub fn get_mut(&mut self, id: Id) -> &mut Obj {
        &mut self.objs[id]
    }
    /// Number of objects.
    pub fn len(&self) -> usize {
        self.objs.len()
    }
    /// The string in object `id`, if it is one.
    pub fn str(&self, id: Id) -> Option<&str> {
        match self.get(id) {
            Obj::Str(s) => Some(s),
            _ => None,
        }
    }
}
