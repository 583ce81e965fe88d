//! Counting multiply-accumulates during a forward pass, with KD-SCFNet's convention.
//!
//! The paper's "FLOPs" are Paddle's `paddle.flops`: convolutions count `out_elements × (C_in /
//! groups) × kh × kw`, plus one per output element when the conv has a bias; BatchNorm counts
//! `2 × elements`; a linear layer `in × out × tokens`. Activations, resizes, element-wise ops,
//! LayerNorm and attention matrix products count zero.
//!
//! The counting lives in the ops, not in the networks' forward code: [`crate::conv2d`],
//! [`crate::conv2d_im2col`], [`crate::depthwise_conv2d`], [`crate::BatchNorm`] and
//! [`crate::linear`] report what they compute through [`add_conv`], [`add_batch_norm`] and
//! [`add_linear`]; [`count_macs`] collects it for one forward pass (a counting pass), and costs
//! nothing outside one.

use std::cell::Cell;

thread_local! {
    static MACS: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Runs `f` and returns its result with the MACs the layers it ran reported.
pub fn count_macs<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let outer = MACS.with(|m| m.replace(Some(0)));
    let r = f();
    let counted = MACS.with(|m| m.replace(outer)).unwrap_or(0);
    (r, counted)
}

fn add(n: u64) {
    MACS.with(|m| {
        if let Some(v) = m.get() {
            m.set(Some(v + n));
        }
    });
}

/// A convolution that produced `out_elements` values with `(C_in / groups) × kh × kw` taps each.
pub fn add_conv(out_elements: usize, taps: usize, bias: bool) {
    add((out_elements * taps + if bias { out_elements } else { 0 }) as u64);
}

/// A BatchNorm over `elements` values.
pub fn add_batch_norm(elements: usize) {
    add(2 * elements as u64);
}

/// A linear layer `in → out` applied to `tokens` vectors (bias not counted).
pub fn add_linear(c_in: usize, c_out: usize, tokens: usize) {
    add((c_in * c_out * tokens) as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_inside_count_macs() {
        add_conv(10, 9, true);
        let ((), n) = count_macs(|| {
            add_conv(10, 9, true);
            add_batch_norm(10);
            add_linear(4, 8, 3);
        });
        assert_eq!(n, 10 * 9 + 10 + 20 + 96);
        let ((), nested) = count_macs(|| {
            add_linear(1, 1, 1);
            let ((), inner) = count_macs(|| add_linear(2, 2, 2));
            assert_eq!(inner, 8);
        });
        assert_eq!(nested, 1);
    }
}
