//! The pickle interpreter: the opcodes `paddle.save` writes at protocols 2-4 (and nothing
//! else), over a stack, a mark stack and a memo of arena ids. Every length is checked against
//! the bytes left before anything is allocated; every fault names its byte offset.

use std::collections::HashMap;

use super::globals::{self, Global};
use super::object::{Arena, ByteSrc, Id, Obj};
use super::opcodes as op;

/// A fault: the byte offset of the opcode (or field) at fault, and what is wrong.
#[derive(Debug)]
pub struct Fault {
    /// Byte offset in the input.
    pub offset: usize,
    /// What is wrong.
    pub msg: String,
}

/// The outcome of a run: every object built, the result's id, the protocol the file declared.
pub struct Unpickled {
    /// The objects.
    pub arena: Arena,
    /// The pickled object (the top of the stack at `STOP`).
    pub root: Id,
    /// The protocol of the `PROTO` opcode (0 when there was none).
    pub protocol: u8,
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    /// Start of the opcode being run.
    at: usize,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
    arena: Arena,
    /// Items left that `tuple(...)` / `OrderedDict(...)` may copy: without a bound a small
    /// file could copy one large list again and again.
    copy_budget: usize,
}

/// Runs the pickle in `data` to its `STOP`.
pub fn run(data: &[u8]) -> Result<Unpickled, Fault> {
    let mut m = Machine {
        data,
        pos: 0,
        at: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        arena: Arena::default(),
        copy_budget: data.len().saturating_add(1 << 16),
    };
    let mut protocol = 0;
    loop {
        m.at = m.pos;
        let Some(&code) = data.get(m.pos) else {
            return Err(Fault {
                offset: m.pos,
                msg: format!(
                    "truncated: the pickle ends at byte {} without its STOP opcode",
                    data.len()
                ),
            });
        };
        m.pos += 1;
        if code == op::STOP {
            let root = m.pop()?;
            return Ok(Unpickled {
                arena: m.arena,
                root,
                protocol,
            });
        }
        if code == op::PROTO {
            protocol = m.take(1)?[0];
            if !(2..=5).contains(&protocol) {
                return m.fail(format!("pickle protocol {protocol}: expected 2 to 5"));
            }
            continue;
        }
        m.step(code).map_err(|msg| Fault {
            offset: m.at,
            msg: format!("{}: {msg}", op::describe(code)),
        })?;
    }
}

impl Machine<'_> {
    fn fail<T>(&self, msg: String) -> Result<T, Fault> {
        Err(Fault {
            offset: self.at,
            msg,
        })
    }

    fn take(&mut self, n: usize) -> Result<&[u8], Fault> {
        let left = self.data.len() - self.pos;
        if n > left {
            return self.fail(format!(
                "truncated: {} needs {n} more bytes, the file ends {left} bytes later (at byte {})",
                op::describe(self.data[self.at]),
                self.data.len()
            ));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn take_range(&mut self, n: usize) -> Result<std::ops::Range<usize>, Fault> {
        let start = self.pos;
        self.take(n)?;
        Ok(start..start + n)
    }

    fn le(&mut self, n: usize) -> Result<u64, Fault> {
        let b = self.take(n)?;
        Ok(b.iter().rev().fold(0u64, |a, &x| (a << 8) | u64::from(x)))
    }

    fn len_field(&mut self, n: usize) -> Result<usize, Fault> {
        let v = self.le(n)?;
        usize::try_from(v).or_else(|_| self.fail(format!("length {v} does not fit in memory")))
    }

    fn pop(&mut self) -> Result<Id, Fault> {
        match self.stack.pop() {
            Some(id) => Ok(id),
            None => self.fail(format!(
                "{} pops an empty stack",
                op::describe(self.data[self.at])
            )),
        }
    }

    fn push(&mut self, obj: Obj) {
        let id = self.arena.push(obj);
        self.stack.push(id);
    }

    /// The items above the last mark, removed from the stack with the mark.
    fn pop_mark(&mut self) -> Result<Vec<Id>, String> {
        let mark = self.marks.pop().ok_or("no MARK before it")?;
        if mark > self.stack.len() {
            return Err("the stack shrank below its MARK".into());
        }
        Ok(self.stack.split_off(mark))
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<Id>, String> {
        if self.stack.len() < n || self.marks.last().is_some_and(|&m| self.stack.len() - n < m) {
            return Err(format!("needs {n} stack items"));
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    fn top(&self) -> Result<Id, String> {
        self.stack
            .last()
            .copied()
            .ok_or_else(|| "empty stack".into())
    }

    fn text(&mut self, n: usize) -> Result<Obj, Fault> {
        let b = self.take(n)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(Obj::Str(s.to_string())),
            Err(e) => self.fail(format!("string is not UTF-8: {e}")),
        }
    }

    fn line(&mut self) -> Result<String, Fault> {
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().take(256).position(|&b| b == b'\n') else {
            return self.fail("GLOBAL: no newline within 256 bytes (truncated or corrupt)".into());
        };
        let s = std::str::from_utf8(&rest[..n])
            .map_err(|_| Fault {
                offset: self.at,
                msg: "GLOBAL: name is not UTF-8".into(),
            })?
            .to_string();
        self.pos += n + 1;
        Ok(s)
    }

    fn memo_put(&mut self, index: u32) -> Result<(), String> {
        let top = self.top()?;
        self.memo.insert(index, top);
        Ok(())
    }

    fn memo_get(&mut self, index: u32) -> Result<(), String> {
        let id = *self
            .memo
            .get(&index)
            .ok_or_else(|| format!("memo entry {index} was never stored"))?;
        self.stack.push(id);
        Ok(())
    }

    fn set_items(&mut self, dict: Id, kv: &[Id]) -> Result<(), String> {
        if !kv.len().is_multiple_of(2) {
            return Err(format!("{} items: not key/value pairs", kv.len()));
        }
        match self.arena.get_mut(dict) {
            // A repeated key is resolved when the dict is read (the last value wins).
            Obj::Dict(entries) => {
                entries.extend(kv.chunks(2).map(|p| (p[0], p[1])));
                Ok(())
            }
            o => Err(format!("target is a {}, not a dict", o.kind())),
        }
    }

    fn append(&mut self, list: Id, items: Vec<Id>) -> Result<(), String> {
        match self.arena.get_mut(list) {
            Obj::List(v) => {
                v.extend(items);
                Ok(())
            }
            o => Err(format!("target is a {}, not a list", o.kind())),
        }
    }

    fn step(&mut self, code: u8) -> Result<(), String> {
        let fault = |f: Fault| f.msg;
        match code {
            op::FRAME => {
                let n = self.len_field(8).map_err(fault)?;
                let left = self.data.len() - self.pos;
                if n > left {
                    return Err(format!(
                        "truncated: the frame holds {n} bytes, the file ends {left} bytes later"
                    ));
                }
            }
            op::EMPTY_DICT => self.push(Obj::Dict(Vec::new())),
            op::EMPTY_LIST => self.push(Obj::List(Vec::new())),
            op::EMPTY_TUPLE => self.push(Obj::Tuple(Vec::new())),
            op::MARK => self.marks.push(self.stack.len()),
            op::TUPLE => {
                let v = self.pop_mark()?;
                self.push(Obj::Tuple(v));
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let v = self.pop_n(usize::from(code - op::TUPLE1 + 1))?;
                self.push(Obj::Tuple(v));
            }
            op::SETITEM => {
                let kv = self.pop_n(2)?;
                let d = self.top()?;
                self.set_items(d, &kv)?;
            }
            op::SETITEMS => {
                let kv = self.pop_mark()?;
                let d = self.top()?;
                self.set_items(d, &kv)?;
            }
            op::APPEND => {
                let v = self.pop_n(1)?;
                let l = self.top()?;
                self.append(l, v)?;
            }
            op::APPENDS => {
                let v = self.pop_mark()?;
                let l = self.top()?;
                self.append(l, v)?;
            }
            op::BINPUT => {
                let i = self.le(1).map_err(fault)? as u32;
                self.memo_put(i)?;
            }
            op::LONG_BINPUT => {
                let i = self.le(4).map_err(fault)? as u32;
                self.memo_put(i)?;
            }
            op::MEMOIZE => {
                let i = u32::try_from(self.memo.len()).map_err(|_| "memo overflow")?;
                self.memo_put(i)?;
            }
            op::BINGET => {
                let i = self.le(1).map_err(fault)? as u32;
                self.memo_get(i)?;
            }
            op::LONG_BINGET => {
                let i = self.le(4).map_err(fault)? as u32;
                self.memo_get(i)?;
            }
            op::BININT1 => {
                let v = self.le(1).map_err(fault)?;
                self.push(Obj::Int(v as i64));
            }
            op::BININT2 => {
                let v = self.le(2).map_err(fault)?;
                self.push(Obj::Int(v as i64));
            }
            op::BININT => {
                let v = self.le(4).map_err(fault)? as u32 as i32;
                self.push(Obj::Int(i64::from(v)));
            }
            op::LONG1 => {
                let n = self.len_field(1).map_err(fault)?;
                let b = self.take(n).map_err(fault)?;
                let obj = if n <= 8 {
                    let neg = b.last().is_some_and(|&x| x & 0x80 != 0);
                    let mut le = [if neg { 0xff } else { 0 }; 8];
                    le[..n].copy_from_slice(b);
                    Obj::Int(i64::from_le_bytes(le))
                } else {
                    Obj::BigInt(n)
                };
                self.push(obj);
            }
            op::BINFLOAT => {
                let b = self.take(8).map_err(fault)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                self.push(Obj::Float(f64::from_be_bytes(a)));
            }
            op::NONE => self.push(Obj::None),
            op::NEWTRUE => self.push(Obj::Bool(true)),
            op::NEWFALSE => self.push(Obj::Bool(false)),
            op::SHORT_BINUNICODE | op::BINUNICODE | op::BINUNICODE8 => {
                let w = match code {
                    op::SHORT_BINUNICODE => 1,
                    op::BINUNICODE => 4,
                    _ => 8,
                };
                let n = self.len_field(w).map_err(fault)?;
                let s = self.text(n).map_err(fault)?;
                self.push(s);
            }
            op::SHORT_BINBYTES | op::BINBYTES | op::BINBYTES8 => {
                let w = match code {
                    op::SHORT_BINBYTES => 1,
                    op::BINBYTES => 4,
                    _ => 8,
                };
                let n = self.len_field(w).map_err(fault)?;
                let r = self.take_range(n).map_err(fault)?;
                self.push(Obj::Bytes(ByteSrc::File(r)));
            }
            op::GLOBAL => {
                let module = self.line().map_err(fault)?;
                let name = self.line().map_err(fault)?;
                let g = globals::lookup(&module, &name)?;
                self.push(Obj::Global(g));
            }
            op::STACK_GLOBAL => {
                let v = self.pop_n(2)?;
                let (Some(module), Some(name)) = (self.arena.str(v[0]), self.arena.str(v[1]))
                else {
                    return Err("module and name are not strings".into());
                };
                let g = globals::lookup(module, name)?;
                self.push(Obj::Global(g));
            }
            op::REDUCE => {
                let v = self.pop_n(2)?;
                let g = match self.arena.get(v[0]) {
                    Obj::Global(g) => *g,
                    o => return Err(format!("calls a {}, not an allowed global", o.kind())),
                };
                if g == Global::NdArray {
                    return Err("numpy.ndarray is allowed only as _reconstruct's argument".into());
                }
                let obj = globals::reduce(&self.arena, g, v[1])?;
                let copied = match &obj {
                    Obj::Tuple(items) => items.len(),
                    Obj::Dict(entries) => entries.len(),
                    _ => 0,
                };
                self.copy_budget = self.copy_budget.checked_sub(copied).ok_or(
                    "copies the same containers again and again (more items than the file holds)",
                )?;
                self.push(obj);
            }
            op::BUILD => {
                let state = self.pop_n(1)?[0];
                let target = self.top()?;
                globals::build(&mut self.arena, target, state)?;
            }
            _ => {
                return Err(
                    "not supported: Paddle's weights files do not use it, and this reader runs \
                     only the opcodes they hold"
                        .into(),
                );
            }
        }
        Ok(())
    }
}
