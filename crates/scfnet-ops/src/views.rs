//! Building blocks of the device-generic paths: padding and strided windows from candle
//! primitives (narrow, index-select, concatenation), all differentiable on every device.

use candle_core::{Result, Tensor};

use crate::constants::cached_constant;

/// Pads the last two axes of a `(B, C, H, W)` tensor with `value`: `(top, bottom)` rows and
/// `(left, right)` columns. Differentiable in `x`.
pub(crate) fn pad2d(
    x: &Tensor,
    rows: (usize, usize),
    cols: (usize, usize),
    value: f64,
) -> Result<Tensor> {
    if value == 0.0 {
        return x
            .pad_with_zeros(2, rows.0, rows.1)?
            .pad_with_zeros(3, cols.0, cols.1);
    }
    let pad_axis = |t: Tensor, axis: usize, (lo, hi): (usize, usize)| -> Result<Tensor> {
        if lo == 0 && hi == 0 {
            return Ok(t);
        }
        let block = |n: usize| -> Result<Tensor> {
            let mut dims = t.dims().to_vec();
            dims[axis] = n;
            Tensor::full(value, dims.as_slice(), t.device())?.to_dtype(t.dtype())
        };
        let mut parts = Vec::with_capacity(3);
        if lo > 0 {
            parts.push(block(lo)?);
        }
        parts.push(t.clone());
        if hi > 0 {
            parts.push(block(hi)?);
        }
        Tensor::cat(&parts, axis)
    };
    let x = pad_axis(x.clone(), 2, rows)?;
    pad_axis(x, 3, cols)
}

/// The `u32` indices `start, start + step, …` (`n` of them) on `device`, cached.
fn indices(start: usize, step: usize, n: usize, device: &candle_core::Device) -> Result<Tensor> {
    cached_constant(&format!("indices:{start}:{step}:{n}"), device, || {
        let ids: Vec<u32> = (0..n).map(|i| (start + i * step) as u32).collect();
        Tensor::from_vec(ids, n, device)
    })
}

/// `n` positions `start, start + step, …` of axis `axis`. Differentiable (an index-select, whose
/// backward is an index-add).
pub(crate) fn strided(
    x: &Tensor,
    axis: usize,
    start: usize,
    step: usize,
    n: usize,
) -> Result<Tensor> {
    if step == 1 || n == 1 {
        return x.narrow(axis, start, n);
    }
    let ids = indices(start, step, n, x.device())?;
    x.contiguous()?.index_select(&ids, axis)
}

/// The `(oh, ow)` window of a padded `(B, C, H, W)` tensor that kernel tap `(ky, kx)` sees:
/// rows `ky·d + y·s` and columns `kx·d + x·s`.
pub(crate) fn tap(
    padded: &Tensor,
    (ky, kx): (usize, usize),
    (sh, sw): (usize, usize),
    dilation: usize,
    (oh, ow): (usize, usize),
) -> Result<Tensor> {
    let rows = strided(padded, 2, ky * dilation, sh, oh)?;
    strided(&rows, 3, kx * dilation, sw, ow)
}
