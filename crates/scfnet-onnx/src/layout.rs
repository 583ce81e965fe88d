//! ONNX forms of pure data movement: transposes, reshapes and cyclic shifts.

use super::{Attr, OnnxGraph, Value};

/// The axes of `x` in the order `perm` (ONNX `Transpose`).
pub fn transpose(g: &mut OnnxGraph, name: &str, x: &Value, perm: &[i64]) -> Value {
    g.node(
        "Transpose",
        name,
        &[Some(x)],
        &[("perm", Attr::Ints(perm.to_vec()))],
    )
}

/// `x` with the shape `shape` (ONNX `Reshape`; `-1` once for the size left over, e.g. the batch).
pub fn reshape(g: &mut OnnxGraph, name: &str, x: &Value, shape: &[i64]) -> Value {
    let s = g.constant_i64(&format!("{name}.shape"), shape);
    g.op("Reshape", name, &[x, &s])
}

/// `x` rolled by `shift` along `axis` of length `len` (`torch.roll`: element `i` moves to
/// `(i + shift) mod len`), as two `Slice`s and a `Concat`.
pub fn roll(g: &mut OnnxGraph, name: &str, x: &Value, shift: i64, axis: i64, len: i64) -> Value {
    let s = shift.rem_euclid(len);
    if s == 0 {
        return x.clone();
    }
    // The last `s` elements come first.
    let part = |g: &mut OnnxGraph, what: &str, start: i64, end: i64| {
        let starts = g.constant_i64(&format!("{name}.{what}.starts"), &[start]);
        let ends = g.constant_i64(&format!("{name}.{what}.ends"), &[end]);
        let axes = g.constant_i64(&format!("{name}.{what}.axes"), &[axis]);
        g.op(
            "Slice",
            &format!("{name}.{what}"),
            &[x, &starts, &ends, &axes],
        )
    };
    let tail = part(g, "tail", len - s, len);
    let head = part(g, "head", 0, len - s);
    g.node(
        "Concat",
        name,
        &[Some(&tail), Some(&head)],
        &[("axis", Attr::Int(axis))],
    )
}
