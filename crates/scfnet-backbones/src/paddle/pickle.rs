//! A minimal Python pickle reader: enough for Paddle's `.pdparams` (dicts of numpy arrays).
//!
//! Supports protocols 2 to 5 as `paddle.save` and `pickle.dump` write them: containers, strings,
//! integers, floats, memo, globals and REDUCE/BUILD, with numpy arrays
//! (`numpy.core.multiarray._reconstruct` + `ndarray.__setstate__`), numpy dtypes, and protocol-2
//! byte strings (`_codecs.encode(s, "latin1")`). Anything else is reported, not guessed.

use std::collections::HashMap;
use std::rc::Rc;

/// A decoded pickle value.
#[derive(Clone, Debug)]
pub enum Value {
    /// `None`.
    None,
    /// A bool.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// Bytes.
    Bytes(Rc<Vec<u8>>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A list.
    List(Vec<Value>),
    /// A dict, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A module-level name (`module.name`).
    Global(String, String),
    /// A numpy dtype (`"f4"`, …) and whether it is big-endian.
    Dtype(String, bool),
    /// A numpy array.
    Array(NdArray),
    /// Any other `callable(*args)`, kept opaque.
    Opaque(String),
    /// The MARK sentinel (internal).
    Mark,
}

/// A numpy array: shape, dtype code (`"f4"`, `"f8"`, `"i8"`, …) and little-endian bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct NdArray {
    /// Shape.
    pub shape: Vec<usize>,
    /// numpy dtype code without byte order.
    pub dtype: String,
    /// Raw data, row-major, little-endian.
    pub data: Rc<Vec<u8>>,
}

/// Parses a pickle; errors are `(byte offset, message)`.
pub fn parse(bytes: &[u8]) -> Result<Value, (usize, String)> {
    let mut m = Machine {
        bytes,
        pos: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
    };
    m.run().map_err(|msg| (m.pos, msg))
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    memo: HashMap<u64, Value>,
}

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or("truncated file")?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn le(&mut self, n: usize) -> Result<u64, String> {
        let b = self.take(n)?;
        Ok(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64))
    }

    fn line(&mut self) -> Result<String, String> {
        let rest = &self.bytes[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("truncated file")?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(s)
    }

    fn pop(&mut self) -> Result<Value, String> {
        self.stack.pop().ok_or_else(|| "stack underflow".to_owned())
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let at = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or("no MARK on the stack")?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }

    fn string(&mut self, n: usize) -> Result<Value, String> {
        let b = self.take(n)?;
        Ok(Value::Str(
            String::from_utf8(b.to_vec()).map_err(|_| "invalid UTF-8 string")?,
        ))
    }

    fn bytes_value(&mut self, n: usize) -> Result<Value, String> {
        Ok(Value::Bytes(Rc::new(self.take(n)?.to_vec())))
    }

    fn run(&mut self) -> Result<Value, String> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO
                }
                0x95 => {
                    self.le(8)?; // FRAME
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Value::Mark),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'K' => {
                    let v = self.le(1)? as i64;
                    self.stack.push(Value::Int(v));
                }
                b'M' => {
                    let v = self.le(2)? as i64;
                    self.stack.push(Value::Int(v));
                }
                b'J' => {
                    let v = self.le(4)? as u32 as i32 as i64;
                    self.stack.push(Value::Int(v));
                }
                0x8a => {
                    // LONG1: little-endian two's complement of n bytes.
                    let n = self.u8()? as usize;
                    let b = self.take(n)?.to_vec();
                    if n > 8 {
                        return Err(format!("integer of {n} bytes is too large"));
                    }
                    let mut v: i64 = 0;
                    for (i, &x) in b.iter().enumerate() {
                        v |= (x as i64) << (8 * i);
                    }
                    if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    self.stack.push(Value::Int(v));
                }
                b'G' => {
                    let b = self.take(8)?;
                    let v = f64::from_be_bytes(b.try_into().expect("8 bytes"));
                    self.stack.push(Value::Float(v));
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                b'X' => {
                    let n = self.le(4)? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                0x8d => {
                    let n = self.le(8)? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    let v = self.bytes_value(n)?;
                    self.stack.push(v);
                }
                b'B' => {
                    let n = self.le(4)? as usize;
                    let v = self.bytes_value(n)?;
                    self.stack.push(v);
                }
                0x8e => {
                    let n = self.le(8)? as usize;
                    let v = self.bytes_value(n)?;
                    self.stack.push(v);
                }
                b'U' => {
                    // SHORT_BINSTRING (protocol 2 str): latin-1 text.
                    let n = self.u8()? as usize;
                    let s: String = self.take(n)?.iter().map(|&c| c as char).collect();
                    self.stack.push(Value::Str(s));
                }
                b'T' => {
                    let n = self.le(4)? as usize;
                    let s: String = self.take(n)?.iter().map(|&c| c as char).collect();
                    self.stack.push(Value::Str(s));
                }
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err("stack underflow".into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items));
                }
                b']' => self.stack.push(Value::List(Vec::new())),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(items));
                }
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(items)?;
                    self.stack.push(Value::Dict(pairs));
                }
                b'a' => {
                    let v = self.pop()?;
                    match self.stack.last_mut() {
                        Some(Value::List(l)) => l.push(v),
                        _ => return Err("APPEND on a non-list".into()),
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    match self.stack.last_mut() {
                        Some(Value::List(l)) => l.extend(items),
                        _ => return Err("APPENDS on a non-list".into()),
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    match self.stack.last_mut() {
                        Some(Value::Dict(d)) => d.push((k, v)),
                        _ => return Err("SETITEM on a non-dict".into()),
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let new = pairs(items)?;
                    match self.stack.last_mut() {
                        Some(Value::Dict(d)) => d.extend(new),
                        _ => return Err("SETITEMS on a non-dict".into()),
                    }
                }
                0x94 => {
                    let top = self
                        .stack
                        .last()
                        .ok_or("MEMOIZE on an empty stack")?
                        .clone();
                    let id = self.memo.len() as u64;
                    self.memo.insert(id, top);
                }
                b'q' | b'r' => {
                    let id = if op == b'q' { self.le(1)? } else { self.le(4)? };
                    let top = self.stack.last().ok_or("PUT on an empty stack")?.clone();
                    self.memo.insert(id, top);
                }
                b'h' | b'j' => {
                    let id = if op == b'h' { self.le(1)? } else { self.le(4)? };
                    let v = self
                        .memo
                        .get(&id)
                        .ok_or_else(|| format!("memo {id} not found"))?
                        .clone();
                    self.stack.push(v);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(Value::Global(module, name));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.stack.push(Value::Global(m, n)),
                        _ => return Err("STACK_GLOBAL needs two strings".into()),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let v = reduce(func, args)?;
                    self.stack.push(v);
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    self.stack.push(Value::Opaque(
                        format!("{cls:?}.__new__{args:?}")
                            .chars()
                            .take(80)
                            .collect(),
                    ));
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.pop()?;
                    let v = build(obj, state)?;
                    self.stack.push(v);
                }
                other => return Err(format!("unsupported pickle opcode 0x{other:02x}")),
            }
        }
    }
}

fn pairs(items: Vec<Value>) -> Result<Vec<(Value, Value)>, String> {
    if items.len() % 2 != 0 {
        return Err("odd number of dict items".into());
    }
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

fn is_numpy(module: &str) -> bool {
    module == "numpy" || module.starts_with("numpy.")
}

/// `func(*args)` for the callables numpy and Python 2-style bytes need.
fn reduce(func: Value, args: Value) -> Result<Value, String> {
    let Value::Global(module, name) = &func else {
        return Ok(Value::Opaque("call of a non-global".into()));
    };
    let args = match args {
        Value::Tuple(a) => a,
        other => return Err(format!("REDUCE arguments are not a tuple: {other:?}")),
    };
    match (module.as_str(), name.as_str()) {
        (m, "_reconstruct") if is_numpy(m) => Ok(Value::Array(NdArray {
            shape: Vec::new(),
            dtype: String::new(),
            data: Rc::new(Vec::new()),
        })),
        (m, "dtype") if is_numpy(m) => match args.first() {
            Some(Value::Str(code)) => Ok(Value::Dtype(code.clone(), false)),
            _ => Err("numpy.dtype without a code".into()),
        },
        ("_codecs", "encode") => match args.first() {
            // Protocol 2 stores bytes as latin-1 text.
            Some(Value::Str(s)) => Ok(Value::Bytes(Rc::new(
                s.chars().map(|c| c as u32 as u8).collect(),
            ))),
            _ => Err("_codecs.encode without a string".into()),
        },
        ("collections", "OrderedDict") => Ok(Value::Dict(Vec::new())),
        _ => Ok(Value::Opaque(format!("{module}.{name}"))),
    }
}

/// `obj.__setstate__(state)` for numpy arrays and dtypes.
fn build(obj: Value, state: Value) -> Result<Value, String> {
    match obj {
        Value::Array(_) => {
            // (version, shape, dtype, is_fortran, data)
            let Value::Tuple(s) = state else {
                return Err("ndarray state is not a tuple".into());
            };
            let [_, Value::Tuple(shape), Value::Dtype(code, big_endian), Value::Bool(fortran), data] =
                s.as_slice()
            else {
                return Err(format!("unexpected ndarray state {s:?}")
                    .chars()
                    .take(200)
                    .collect());
            };
            if *fortran {
                return Err("Fortran-ordered arrays are not supported".into());
            }
            let shape = shape
                .iter()
                .map(|d| match d {
                    Value::Int(v) if *v >= 0 => Ok(*v as usize),
                    _ => Err("bad array dimension".to_owned()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let Value::Bytes(bytes) = data else {
                return Err("array data is not bytes (object arrays are not supported)".into());
            };
            let mut data = bytes.clone();
            if *big_endian {
                let width = dtype_width(code).ok_or_else(|| format!("unsupported dtype {code}"))?;
                let mut swapped = (*data).clone();
                swapped.chunks_exact_mut(width).for_each(|c| c.reverse());
                data = Rc::new(swapped);
            }
            Ok(Value::Array(NdArray {
                shape,
                dtype: code.clone(),
                data,
            }))
        }
        Value::Dtype(code, _) => {
            // (version, byte order, …)
            let order = match &state {
                Value::Tuple(s) => match s.get(1) {
                    Some(Value::Str(o)) => o.clone(),
                    _ => "|".into(),
                },
                _ => "|".into(),
            };
            Ok(Value::Dtype(code, order == ">"))
        }
        Value::Dict(mut d) => {
            if let Value::Dict(extra) = state {
                d.extend(extra);
            }
            Ok(Value::Dict(d))
        }
        other => Ok(other),
    }
}

/// Bytes per element of a numpy dtype code.
pub fn dtype_width(code: &str) -> Option<usize> {
    match code {
        "f2" | "i2" | "u2" => Some(2),
        "f4" | "i4" | "u4" => Some(4),
        "f8" | "i8" | "u8" => Some(8),
        "b1" | "i1" | "u1" => Some(1),
        _ => None,
    }
}
