//! The allow-list of globals a Paddle weights pickle may name, and what `REDUCE` and `BUILD`
//! mean for each. Nothing is ever called: each allowed global is a constructor this module
//! interprets (numpy arrays and dtypes, the `_codecs.encode` of protocol 2's array data,
//! `OrderedDict`, Paddle's `tuple` wrapper of named tensors). Any other global is refused with
//! its name, before anything is built from it.

use super::object::{Arena, ArrayState, ByteSrc, DTypeObj, Id, Obj};

/// A global on the allow-list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Global {
    /// `numpy.core.multiarray._reconstruct` (numpy 1) / `numpy._core.multiarray._reconstruct`
    /// (numpy 2): an empty array whose `BUILD` state fills it.
    Reconstruct,
    /// `numpy.ndarray`: only as `_reconstruct`'s first argument.
    NdArray,
    /// `numpy.dtype`.
    DType,
    /// `numpy.core.multiarray.scalar`: a numpy scalar (optimizer / scheduler state).
    Scalar,
    /// `_codecs.encode`: protocol 2 stores array bytes as a latin-1 string and encodes it back.
    CodecsEncode,
    /// `collections.OrderedDict`.
    OrderedDict,
    /// `builtins.tuple` (`__builtin__.tuple` at protocol 2): Paddle pickles a tensor nested in
    /// a container as `tuple(((name, ndarray),))`.
    Tuple,
}

/// Every allowed `(module, name)`, for the documentation and the refusal message.
pub const ALLOWED: &[(&str, &str)] = &[
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("collections", "OrderedDict"),
    ("builtins", "tuple"),
    ("__builtin__", "tuple"),
];

/// The allowed global `module.name`, or an error naming it.
pub fn lookup(module: &str, name: &str) -> Result<Global, String> {
    let multiarray = matches!(module, "numpy.core.multiarray" | "numpy._core.multiarray");
    Ok(match (module, name) {
        (_, "_reconstruct") if multiarray => Global::Reconstruct,
        (_, "scalar") if multiarray => Global::Scalar,
        ("numpy", "ndarray") => Global::NdArray,
        ("numpy", "dtype") => Global::DType,
        ("_codecs", "encode") => Global::CodecsEncode,
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("builtins" | "__builtin__", "tuple") => Global::Tuple,
        _ => {
            return Err(format!(
                "global {module}.{name} is not allowed: a weights file holds only numpy arrays \
                 in dicts, and loading one never runs code (allowed: {})",
                ALLOWED
                    .iter()
                    .map(|(m, n)| format!("{m}.{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    })
}

fn items(arena: &Arena, id: Id) -> Option<&[Id]> {
    match arena.get(id) {
        Obj::Tuple(v) | Obj::List(v) => Some(v),
        _ => None,
    }
}

/// What `REDUCE` of `global` over the argument tuple `args` builds.
pub fn reduce(arena: &Arena, global: Global, args: Id) -> Result<Obj, String> {
    let Some(a) = items(arena, args) else {
        return Err(format!(
            "REDUCE arguments are a {}, expected a tuple",
            arena.get(args).kind()
        ));
    };
    let kinds = || {
        a.iter()
            .map(|&i| arena.get(i).kind())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (global, a) {
        (Global::Reconstruct, [cls, _shape, _tag])
            if matches!(arena.get(*cls), Obj::Global(Global::NdArray)) =>
        {
            Ok(Obj::Array(None))
        }
        (Global::DType, [descr, _, _]) => match arena.str(*descr) {
            Some(d) => Ok(Obj::DType(DTypeObj {
                descr: d.to_string(),
                byteorder: '<',
                structured: false,
            })),
            None => Err(format!("numpy.dtype({}): expected a type code", kinds())),
        },
        (Global::Scalar, [dtype, data])
            if matches!(arena.get(*dtype), Obj::DType(_))
                && matches!(arena.get(*data), Obj::Bytes(_)) =>
        {
            Ok(Obj::Scalar {
                dtype: *dtype,
                data: *data,
            })
        }
        (Global::CodecsEncode, [text, enc])
            if matches!(arena.str(*enc), Some("latin1" | "latin-1")) =>
        {
            let Some(text) = arena.str(*text) else {
                return Err(format!("_codecs.encode({}): expected a string", kinds()));
            };
            text.chars()
                .map(|c| u8::try_from(u32::from(c)).ok())
                .collect::<Option<Vec<u8>>>()
                .map(|b| Obj::Bytes(ByteSrc::Owned(b)))
                .ok_or_else(|| "_codecs.encode: a character beyond latin-1".to_string())
        }
        (Global::OrderedDict, []) => Ok(Obj::Dict(Vec::new())),
        (Global::OrderedDict, [pairs]) => {
            let Some(pairs) = items(arena, *pairs) else {
                return Err(format!(
                    "OrderedDict({}): expected a list of pairs",
                    kinds()
                ));
            };
            pairs
                .iter()
                .map(|&p| match items(arena, p) {
                    Some(&[k, v]) => Ok((k, v)),
                    _ => Err("OrderedDict: an item is not a (key, value) pair".to_string()),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Obj::Dict)
        }
        (Global::Tuple, [seq]) => match items(arena, *seq) {
            Some(v) => Ok(Obj::Tuple(v.to_vec())),
            None => Err(format!("tuple({}): expected a tuple or list", kinds())),
        },
        (g, _) => Err(format!(
            "{g:?} called with unexpected arguments ({})",
            kinds()
        )),
    }
}

/// Applies `BUILD` with `state` to the object `target` (an array or a dtype).
pub fn build(arena: &mut Arena, target: Id, state: Id) -> Result<(), String> {
    let Some(s) = items(arena, state).map(<[Id]>::to_vec) else {
        return Err(format!(
            "BUILD state is a {}, expected a tuple",
            arena.get(state).kind()
        ));
    };
    match arena.get(target) {
        Obj::Array(None) => {
            // ndarray.__setstate__: ([version,] shape, dtype, is_fortran, data).
            let s = match s.len() {
                5 => &s[1..],
                4 => &s[..],
                n => return Err(format!("array state has {n} items, expected 4 or 5")),
            };
            let shape = items(arena, s[0])
                .ok_or("array shape is not a tuple")?
                .iter()
                .map(|&d| match arena.get(d) {
                    Obj::Int(n) => usize::try_from(*n).map_err(|_| format!("array dim {n}")),
                    o => Err(format!("array dim is a {}", o.kind())),
                })
                .collect::<Result<Vec<_>, _>>()?;
            if !matches!(arena.get(s[1]), Obj::DType(_)) {
                return Err(format!("array dtype is a {}", arena.get(s[1]).kind()));
            }
            let fortran = match arena.get(s[2]) {
                Obj::Bool(b) => *b,
                Obj::Int(i) => *i != 0,
                o => return Err(format!("array order flag is a {}", o.kind())),
            };
            *arena.get_mut(target) = Obj::Array(Some(ArrayState {
                shape,
                dtype: s[1],
                fortran,
                data: s[3],
            }));
            Ok(())
        }
        Obj::DType(_) => {
            // dtype.__setstate__: (version, byteorder, subarray, names, fields, elsize, ...).
            let order = s
                .get(1)
                .and_then(|&i| arena.str(i))
                .and_then(|o| o.chars().next())
                .ok_or("dtype state has no byte order")?;
            let structured = s
                .get(3)
                .is_some_and(|&i| !matches!(arena.get(i), Obj::None));
            if let Obj::DType(d) = arena.get_mut(target) {
                d.byteorder = order;
                d.structured = structured;
            }
            Ok(())
        }
        o => Err(format!("BUILD on a {}: only arrays and dtypes", o.kind())),
    }
}
