//! From the unpickled object graph to named tensors: every array in the top-level dict (and in
//! dicts, lists and Paddle's `(name, array)` tuples nested in it, named `outer/inner`) becomes a
//! tensor; everything else (scheduler state, name tables, counters) is listed as skipped.

use std::collections::{HashMap, HashSet};

use super::numpy::{self, Converted};
use super::object::{Arena, Id, Obj};
use crate::Tensor;

/// An entry of the file that is not a tensor, or an array this crate cannot hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Its key path (`outer/inner` for nested containers).
    pub key: String,
    /// What it is, e.g. `int 3` or `dict of 424 entries, no arrays`.
    pub what: String,
}

/// Tensors in file order and the skipped entries.
pub struct Collected {
    /// `(name, tensor)` in the order the file holds them.
    pub tensors: Vec<(String, Tensor)>,
    /// Entries that are not tensors.
    pub skipped: Vec<Skipped>,
    /// The integers and strings among the skipped entries (and one level inside a dict without
    /// arrays), by key path: `last_epoch`, `LR_Scheduler/last_epoch`, the
    /// `StructuredToParameterName@@` name table.
    pub values: Vec<(String, Value)>,
}

/// An integer or string of the file: what PaddleDetection's checkpoints keep besides arrays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A Python int that fits in i64.
    Int(i64),
    /// A Python str.
    Str(String),
}

/// Most nesting levels read below the top-level dict.
const MAX_DEPTH: usize = 64;
/// Paddle's key of parameters saved in slices (over 1 GiB, protocols 2-3): name ->
/// `{"OriginShape": shape, "slices": [slice names]}`, each slice a flat top-level array.
const BIG_PARAM_KEY: &str = "UnpackBigParamInfor@@";

struct Walker<'a> {
    arena: &'a Arena,
    input: &'a [u8],
    has_array: Vec<Option<bool>>,
    budget: usize,
    out: Collected,
    names: HashSet<String>,
    /// Arrays already converted (a shared array is one tensor, storage shared).
    converted: HashMap<Id, Tensor>,
    /// Bytes of array data left to convert: the data of distinct arrays is in the file once,
    /// so more than the file's size is an array state pointing at the same bytes again.
    byte_budget: usize,
}

/// Collects the tensors of the pickled object `root`.
pub fn collect(arena: &Arena, root: Id, input: &[u8]) -> Result<Collected, String> {
    let Obj::Dict(_) = arena.get(root) else {
        return Err(format!(
            "the pickle holds a {}, expected a dict of name -> array",
            arena.get(root).kind()
        ));
    };
    let mut w = Walker {
        arena,
        input,
        has_array: vec![None; arena.len()],
        budget: arena.len().saturating_mul(4).saturating_add(1024),
        out: Collected {
            tensors: Vec::new(),
            skipped: Vec::new(),
            values: Vec::new(),
        },
        names: HashSet::new(),
        converted: HashMap::new(),
        byte_budget: input.len().saturating_mul(2).saturating_add(1 << 20),
    };
    let mut big = None;
    for (key, value) in w.entries(root) {
        if key == BIG_PARAM_KEY {
            big = Some(value);
            continue;
        }
        w.walk(value, key, 0)?;
    }
    if let Some(info) = big {
        w.join_slices(info)
            .map_err(|e| format!("{BIG_PARAM_KEY}: {e}"))?;
    }
    Ok(w.out)
}

fn key_text(arena: &Arena, k: Id) -> String {
    match arena.get(k) {
        Obj::Str(s) => s.clone(),
        Obj::Int(i) => i.to_string(),
        o => format!("<{}>", o.kind()),
    }
}

impl Walker<'_> {
    /// The dict's entries, one per key (the last value set wins, at its first position).
    fn entries(&self, dict: Id) -> Vec<(String, Id)> {
        let Obj::Dict(entries) = self.arena.get(dict) else {
            return Vec::new();
        };
        let mut at: HashMap<String, usize> = HashMap::new();
        let mut out: Vec<(String, Id)> = Vec::with_capacity(entries.len());
        for &(k, v) in entries {
            let key = key_text(self.arena, k);
            match at.get(&key) {
                Some(&i) => out[i].1 = v,
                None => {
                    at.insert(key.clone(), out.len());
                    out.push((key, v));
                }
            }
        }
        out
    }

    fn spend(&mut self) -> Result<(), String> {
        self.budget = self
            .budget
            .checked_sub(1)
            .ok_or("the object graph refers to the same objects too often")?;
        Ok(())
    }

    fn contains_array(&mut self, id: Id, depth: usize) -> Result<bool, String> {
        if let Some(b) = self.has_array[id] {
            return Ok(b);
        }
        if depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        self.spend()?;
        // A cycle reads as "no array" while it is being explored.
        self.has_array[id] = Some(false);
        let children: Vec<Id> = match self.arena.get(id) {
            Obj::Array(_) => {
                self.has_array[id] = Some(true);
                return Ok(true);
            }
            Obj::Tuple(v) | Obj::List(v) => v.clone(),
            Obj::Dict(e) => e.iter().map(|&(_, v)| v).collect(),
            _ => Vec::new(),
        };
        let mut any = false;
        for c in children {
            any |= self.contains_array(c, depth + 1)?;
        }
        self.has_array[id] = Some(any);
        Ok(any)
    }

    /// Replaces the slices Paddle split big parameters into by the parameters (as
    /// `paddle.load`'s `_pack_loaded_dict`: concatenated, reshaped, last in the file order).
    fn join_slices(&mut self, info: Id) -> Result<(), String> {
        let arena = self.arena;
        if !matches!(arena.get(info), Obj::Dict(_)) {
            return Err(format!("is a {}, expected a dict", arena.get(info).kind()));
        }
        for (name, entry) in self.entries(info) {
            let fields: HashMap<String, Id> = self.entries(entry).into_iter().collect();
            let list = |k: &str| match fields.get(k).map(|&i| arena.get(i)) {
                Some(Obj::Tuple(v) | Obj::List(v)) => Ok(v.clone()),
                _ => Err(format!("{name}: no {k} list")),
            };
            let shape = list("OriginShape")?
                .iter()
                .map(|&d| match arena.get(d) {
                    Obj::Int(n) => usize::try_from(*n).map_err(|_| format!("{name}: dim {n}")),
                    o => Err(format!("{name}: a dim is a {}", o.kind())),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut data = Vec::new();
            let mut dtype = None;
            for s in list("slices")? {
                let part = arena
                    .str(s)
                    .ok_or_else(|| format!("{name}: a slice name is not a string"))?;
                let at = self
                    .out
                    .tensors
                    .iter()
                    .position(|(n, _)| n == part)
                    .ok_or_else(|| format!("{name}: slice {part:?} is not in the file"))?;
                let (_, t) = self.out.tensors.remove(at);
                self.names.remove(part);
                if dtype.is_some_and(|d| d != t.dtype()) {
                    return Err(format!("{name}: slices of different dtypes"));
                }
                dtype = Some(t.dtype());
                data.extend_from_slice(&t.to_contiguous_bytes().map_err(|e| e.to_string())?);
            }
            let dtype = dtype.ok_or_else(|| format!("{name}: no slices"))?;
            let storage = crate::HostStorage::Owned(crate::storage::AlignedBytes::copy_from(&data));
            let t = Tensor::from_host_storage(storage, dtype, &shape)
                .map_err(|e| format!("{name}: slices do not make shape {shape:?}: {e}"))?;
            if !self.names.insert(name.clone()) {
                return Err(format!("tensor name {name:?} occurs twice"));
            }
            self.out.tensors.push((name, t));
        }
        Ok(())
    }

    fn skip(&mut self, key: &str, what: String) {
        self.out.skipped.push(Skipped {
            key: key.to_string(),
            what,
        });
    }

    fn walk(&mut self, id: Id, path: String, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("{path}: nested deeper than {MAX_DEPTH} levels"));
        }
        self.spend()?;
        let arena = self.arena;
        match arena.get(id) {
            Obj::Array(Some(state)) => {
                let converted = match self.converted.get(&id) {
                    Some(t) => Converted::Tensor(t.clone()),
                    None => numpy::convert(arena, state, self.input)
                        .map_err(|e| format!("{path}: {e}"))?,
                };
                match converted {
                    Converted::Tensor(t) => {
                        if !self.converted.contains_key(&id) {
                            let bytes = t.numel() * t.dtype().size();
                            self.byte_budget = self.byte_budget.checked_sub(bytes).ok_or_else(|| {
                                format!("{path}: arrays reuse the same data more than the file holds")
                            })?;
                            self.converted.insert(id, t.clone());
                        }
                        if !self.names.insert(path.clone()) {
                            return Err(format!("tensor name {path:?} occurs twice"));
                        }
                        self.out.tensors.push((path, t));
                    }
                    Converted::Unsupported(what) => self.skip(&path, what),
                }
            }
            Obj::Array(None) => {
                return Err(format!("{path}: numpy array without its state (no BUILD)"));
            }
            // Paddle's wrapper of a tensor inside a container: tuple(((name, array),)).
            Obj::Tuple(v)
                if v.len() == 2
                    && matches!(arena.get(v[0]), Obj::Str(_))
                    && matches!(arena.get(v[1]), Obj::Array(_)) =>
            {
                self.walk(v[1], path, depth + 1)?;
            }
            Obj::Dict(e) => {
                if !self.contains_array(id, depth)? {
                    self.skip(&path, format!("dict of {} entries, no arrays", e.len()));
                    for (k, v) in self.entries(id) {
                        self.spend()?;
                        match arena.get(v) {
                            Obj::Int(i) => self
                                .out
                                .values
                                .push((format!("{path}/{k}"), Value::Int(*i))),
                            Obj::Str(s) => self
                                .out
                                .values
                                .push((format!("{path}/{k}"), Value::Str(s.clone()))),
                            _ => {}
                        }
                    }
                } else {
                    for (k, v) in self.entries(id) {
                        self.walk(v, format!("{path}/{k}"), depth + 1)?;
                    }
                }
            }
            Obj::Tuple(v) | Obj::List(v) => {
                if !self.contains_array(id, depth)? {
                    let kind = arena.get(id).kind();
                    self.skip(&path, format!("{kind} of {} items, no arrays", v.len()));
                } else {
                    for (i, &c) in v.iter().enumerate() {
                        self.walk(c, format!("{path}/{i}"), depth + 1)?;
                    }
                }
            }
            Obj::Scalar { dtype, data } => {
                let what = numpy::describe_scalar(arena, *dtype, *data, self.input);
                self.skip(&path, what);
            }
            Obj::None => self.skip(&path, "None".into()),
            Obj::Bool(b) => self.skip(&path, format!("bool {b}")),
            Obj::Int(i) => {
                self.skip(&path, format!("int {i}"));
                self.out.values.push((path, Value::Int(*i)));
            }
            Obj::BigInt(n) => self.skip(&path, format!("int of {n} bytes")),
            Obj::Float(f) => self.skip(&path, format!("float {f}")),
            Obj::Str(s) => {
                let short: String = s.chars().take(40).collect();
                self.skip(&path, format!("str {short:?}"));
                self.out.values.push((path, Value::Str(s.clone())));
            }
            o => {
                let what = o.kind().to_string();
                self.skip(&path, what);
            }
        }
        Ok(())
    }
}
