//! A minimal Python pickle reader: enough for Paddle's `.pdparams` (dicts of numpy arrays).
//!
//! Supports protocols 2 to 5 as `paddle.save` and `pickle.dump` write them: containers, strings,
//! integers, floats, memo, globals and REDUCE/BUILD, with numpy arrays
//! (`numpy.core.multiarray._reconstruct` + `ndarray.__setstate__`), numpy dtypes, and protocol-2
//! byte strings (`_codecs.encode(s, "latin1")`). Anything else is reported, not guessed.
//!
//! Bounded against hostile files: containers nest at most [`MAX_DEPTH`] deep, and the values
//! built — memo references count in full, since they are copied — total at most [`MAX_NODES`]
//! (strings weigh one per 8 bytes). A `.pdparams` of the networks here has a few thousand values
//! at depth ≤ 4; a 285-byte "billion laughs" file would otherwise grow without bound.

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

/// Deepest nesting of containers accepted.
pub const MAX_DEPTH: usize = 256;

/// Most values a pickle may build (memo references counted in full).
pub const MAX_NODES: usize = 2_000_000;

/// Parses a pickle; errors are `(byte offset, message)`.
pub fn parse(bytes: &[u8]) -> Result<Value, (usize, String)> {
    let mut m = Machine {
        bytes,
        pos: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
        nodes: 0,
    };
    m.run().map_err(|msg| (m.pos, msg))
}

/// Nesting depth and number of values of a stack entry.
#[derive(Clone, Copy, Debug)]
struct Size {
    depth: usize,
    nodes: usize,
}

impl Size {
    const LEAF: Size = Size { depth: 0, nodes: 1 };

    /// A container holding values of these sizes.
    fn container<'a>(items: impl IntoIterator<Item = &'a Size>) -> Size {
        items
            .into_iter()
            .fold(Size { depth: 1, nodes: 1 }, |acc, s| Size {
                depth: acc.depth.max(s.depth + 1),
                nodes: acc.nodes.saturating_add(s.nodes),
            })
    }
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Values with their sizes.
    stack: Vec<(Value, Size)>,
    memo: HashMap<u64, (Value, Size)>,
    /// Values built so far.
    nodes: usize,
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

    /// Counts `size` against [`MAX_NODES`] and [`MAX_DEPTH`].
    fn charge(&mut self, size: Size) -> Result<(), String> {
        self.nodes = self.nodes.saturating_add(size.nodes);
        if self.nodes > MAX_NODES {
            return Err(format!(
                "more than {MAX_NODES} values (memo references expand without bound?): \
                 refusing a pickle bomb"
            ));
        }
        if size.depth > MAX_DEPTH {
            return Err(format!("containers nested more than {MAX_DEPTH} deep"));
        }
        Ok(())
    }

    /// Pushes a new value of `size` (counted).
    fn push_sized(&mut self, v: Value, size: Size) -> Result<(), String> {
        self.charge(Size { nodes: 1, ..size })?;
        self.stack.push((v, size));
        Ok(())
    }

    fn push(&mut self, v: Value) -> Result<(), String> {
        let size = match &v {
            Value::Str(s) => Size {
                depth: 0,
                nodes: 1 + s.len() / 8,
            },
            _ => Size::LEAF,
        };
        self.charge(size)?;
        self.stack.push((v, size));
        Ok(())
    }

    /// Pushes a container built from `items`.
    fn push_container(
        &mut self,
        items: &[Size],
        make: impl FnOnce() -> Value,
    ) -> Result<(), String> {
        let size = Size::container(items);
        self.push_sized(make(), size)
    }

    fn pop(&mut self) -> Result<(Value, Size), String> {
        self.stack.pop().ok_or_else(|| "stack underflow".to_owned())
    }

    fn pop_value(&mut self) -> Result<Value, String> {
        Ok(self.pop()?.0)
    }

    fn pop_mark(&mut self) -> Result<(Vec<Value>, Vec<Size>), String> {
        let at = self
            .stack
            .iter()
            .rposition(|(v, _)| matches!(v, Value::Mark))
            .ok_or("no MARK on the stack")?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items.into_iter().unzip())
    }

    /// Adds `extra` to the size of the container on top of the stack.
    fn grow_top(&mut self, extra: &[Size]) -> Result<(), String> {
        let top = self.stack.last().ok_or("stack underflow")?.1;
        let grown = Size::container(extra.iter().chain([&Size {
            depth: top.depth.saturating_sub(1),
            nodes: top.nodes.saturating_sub(1),
        }]));
        if grown.depth > MAX_DEPTH {
            return Err(format!("containers nested more than {MAX_DEPTH} deep"));
        }
        if let Some(last) = self.stack.last_mut() {
            last.1 = grown;
        }
        Ok(())
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
                b'.' => return self.pop_value(),
                b'(' => self.stack.push((Value::Mark, Size::LEAF)),
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'K' => {
                    let v = self.le(1)? as i64;
                    self.push(Value::Int(v))?;
                }
                b'M' => {
                    let v = self.le(2)? as i64;
                    self.push(Value::Int(v))?;
                }
                b'J' => {
                    let v = self.le(4)? as u32 as i32 as i64;
                    self.push(Value::Int(v))?;
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
                    self.push(Value::Int(v))?;
                }
                b'G' => {
                    let b = self.take(8)?;
                    let v = f64::from_be_bytes(b.try_into().expect("8 bytes"));
                    self.push(Value::Float(v))?;
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.string(n)?;
                    self.push(v)?;
                }
                b'X' => {
                    let n = self.le(4)? as usize;
                    let v = self.string(n)?;
                    self.push(v)?;
                }
                0x8d => {
                    let n = self.le(8)? as usize;
                    let v = self.string(n)?;
                    self.push(v)?;
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    let v = self.bytes_value(n)?;
                    self.push(v)?;
                }
                b'B' => {
                    let n = self.le(4)? as usize;
                    let v = self.bytes_value(n)?;
                    self.push(v)?;
                }
                0x8e => {
                    let n = self.le(8)? as usize;
                    let v = self.bytes_value(n)?;
                    self.push(v)?;
                }
                b'U' => {
                    // SHORT_BINSTRING (protocol 2 str): latin-1 text.
                    let n = self.u8()? as usize;
                    let s: String = self.take(n)?.iter().map(|&c| c as char).collect();
                    self.push(Value::Str(s))?;
                }
                b'T' => {
                    let n = self.le(4)? as usize;
                    let s: String = self.take(n)?.iter().map(|&c| c as char).collect();
                    self.push(Value::Str(s))?;
                }
                b')' => self.push(Value::Tuple(Vec::new()))?,
                b't' => {
                    let (items, sizes) = self.pop_mark()?;
                    self.push_container(&sizes, || Value::Tuple(items))?;
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err("stack underflow".into());
                    }
                    let (items, sizes): (Vec<Value>, Vec<Size>) = self
                        .stack
                        .split_off(self.stack.len() - n)
                        .into_iter()
                        .unzip();
                    self.push_container(&sizes, || Value::Tuple(items))?;
                }
                b']' => self.push(Value::List(Vec::new()))?,
                b'l' => {
                    let (items, sizes) = self.pop_mark()?;
                    self.push_container(&sizes, || Value::List(items))?;
                }
                b'}' => self.push(Value::Dict(Vec::new()))?,
                b'd' => {
                    let (items, sizes) = self.pop_mark()?;
                    let pairs = pairs(items)?;
                    self.push_container(&sizes, || Value::Dict(pairs))?;
                }
                b'a' => {
                    let (v, size) = self.pop()?;
                    self.grow_top(&[size])?;
                    match self.stack.last_mut() {
                        Some((Value::List(l), _)) => l.push(v),
                        _ => return Err("APPEND on a non-list".into()),
                    }
                }
                b'e' => {
                    let (items, sizes) = self.pop_mark()?;
                    self.grow_top(&sizes)?;
                    match self.stack.last_mut() {
                        Some((Value::List(l), _)) => l.extend(items),
                        _ => return Err("APPENDS on a non-list".into()),
                    }
                }
                b's' => {
                    let (v, vs) = self.pop()?;
                    let (k, ks) = self.pop()?;
                    self.grow_top(&[vs, ks])?;
                    match self.stack.last_mut() {
                        Some((Value::Dict(d), _)) => d.push((k, v)),
                        _ => return Err("SETITEM on a non-dict".into()),
                    }
                }
                b'u' => {
                    let (items, sizes) = self.pop_mark()?;
                    self.grow_top(&sizes)?;
                    let new = pairs(items)?;
                    match self.stack.last_mut() {
                        Some((Value::Dict(d), _)) => d.extend(new),
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
                    let (_, size) = *self
                        .memo
                        .get(&id)
                        .ok_or_else(|| format!("memo {id} not found"))?;
                    // The copy costs as much as the value: count it before making it.
                    self.charge(size)?;
                    let v = self.memo[&id].clone();
                    self.stack.push(v);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Value::Global(module, name))?;
                }
                0x93 => {
                    let name = self.pop_value()?;
                    let module = self.pop_value()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.push(Value::Global(m, n))?,
                        _ => return Err("STACK_GLOBAL needs two strings".into()),
                    }
                }
                b'R' => {
                    let (args, a) = self.pop()?;
                    let (func, f) = self.pop()?;
                    let v = reduce(func, args)?;
                    self.push_container(&[a, f], || v)?;
                }
                0x81 => {
                    let (args, _) = self.pop()?;
                    let (cls, _) = self.pop()?;
                    self.push(Value::Opaque(format!(
                        "{}.__new__({})",
                        describe(&cls),
                        describe(&args)
                    )))?;
                }
                b'b' => {
                    let (state, s) = self.pop()?;
                    let (obj, o) = self.pop()?;
                    let v = build(obj, state)?;
                    self.push_container(&[s, o], || v)?;
                }
                other => return Err(format!("unsupported pickle opcode 0x{other:02x}")),
            }
        }
    }
}

/// A short description of a value (never its whole contents).
fn describe(v: &Value) -> String {
    match v {
        Value::Global(m, n) => format!("{m}.{n}"),
        Value::Str(s) => format!("{:?}", s.chars().take(40).collect::<String>()),
        Value::Int(i) => i.to_string(),
        Value::Tuple(t) => format!("tuple of {}", t.len()),
        Value::List(l) => format!("list of {}", l.len()),
        Value::Dict(d) => format!("dict of {}", d.len()),
        Value::Bytes(b) => format!("{} bytes", b.len()),
        Value::Array(a) => format!("array {:?} {}", a.shape, a.dtype),
        Value::Opaque(o) => o.chars().take(60).collect(),
        other => format!("{other:?}"),
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
        other => {
            return Err(format!(
                "REDUCE arguments are not a tuple: {}",
                describe(&other)
            ))
        }
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
                let parts: Vec<String> = s.iter().map(describe).collect();
                return Err(format!("unexpected ndarray state ({})", parts.join(", ")));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Protocol-2 header.
    fn pickle(body: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 2];
        p.extend_from_slice(body);
        p.push(b'.');
        p
    }

    #[test]
    fn memo_bomb_is_refused_quickly() {
        // "Billion laughs": a list memoised as 0, then 64 times `[m0, m0]` stored back as 0.
        let mut body = vec![b']', b'q', 0];
        for _ in 0..64 {
            body.extend_from_slice(&[b'(', b'h', 0, b'h', 0, b'l', b'q', 0]);
        }
        let bytes = pickle(&body);
        assert!(bytes.len() < 600);
        let started = std::time::Instant::now();
        let (_, msg) = parse(&bytes).unwrap_err();
        assert!(msg.contains("pickle bomb"), "{msg}");
        assert!(started.elapsed().as_secs() < 10);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let n = 200_000;
        let mut body = vec![b'('; n];
        body.extend(std::iter::repeat_n(b'l', n));
        let (_, msg) = parse(&pickle(&body)).unwrap_err();
        assert!(msg.contains("nested more than"), "{msg}");
        // The same through APPEND: [[[…]]] built from the inside out.
        let mut body = vec![b']'];
        for _ in 0..n {
            body.extend_from_slice(&[b']', 0x86_u8]); // (inner, []) tuple, nesting grows
        }
        let (_, msg) = parse(&pickle(&body)).unwrap_err();
        assert!(msg.contains("nested more than"), "{msg}");
    }

    #[test]
    fn ordinary_nesting_and_sharing_still_parse() {
        // {"a": [1, 2], "b": <memo of the list>} nested 10 deep.
        let mut body = vec![
            b'}', b'(', 0x8c, 1, b'a', b']', b'q', 1, b'(', b'K', 1, b'K', 2,
        ];
        body.extend_from_slice(&[b'e', 0x8c, 1, b'b', b'h', 1, b'u']);
        for _ in 0..10 {
            body.extend_from_slice(&[0x85]); // wrap in a 1-tuple
        }
        let v = parse(&pickle(&body)).unwrap();
        assert!(matches!(v, Value::Tuple(_)));
    }
}
