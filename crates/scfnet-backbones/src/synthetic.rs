//! Deterministic synthetic weights, identical in Rust and in the Python reference scripts.
//!
//! Parity tests need the same weights on both sides without committing hundreds of megabytes.
//! Every tensor is generated from its *name* and shape alone, so any two implementations that use
//! the same checkpoint names get the same weights:
//!
//! - seed = FNV-1a (64-bit) of the UTF-8 name; then one SplitMix64 step per element gives
//!   `u = (z >> 11) · 2⁻⁵³ ∈ [0, 1)` and `v = 2u − 1 ∈ [−1, 1)`, computed in f64;
//! - `*.running_var` → `1 + 0.5 v`; `*.running_mean` → `0.1 v`; any other rank-1 `*.weight`
//!   (norm scales) → `1 + 0.2 v`; `*.bias` → `0.1 v`; `*relative_position_bias_table` → `0.02 v`;
//!   other tensors of rank ≥ 2 → `v · √(6 / fan_in)` with `fan_in` = product of all dims but the
//!   first (He-uniform);
//! - the f64 value is rounded to the requested dtype.
//!
//! `tests/reference/backbones/synthetic.py` is the Python twin.

use std::sync::Mutex;

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

/// 64-bit FNV-1a of a name.
fn fnv1a(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `n` values `v ∈ [−1, 1)` drawn from the stream of `name`.
fn uniform(name: &str, n: usize) -> Vec<f64> {
    let mut state = fnv1a(name);
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = (z >> 11) as f64 / (1u64 << 53) as f64;
            2.0 * u - 1.0
        })
        .collect()
}

/// A synthetic input image of shape `dims` (e.g. `(B, 3, H, W)`): values `2v ∈ [−2, 2)` from the
/// stream of `name` (the reference scripts use `"input:BxCxHxW"`).
pub fn synthetic_image(
    name: &str,
    dims: &[usize],
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let n: usize = dims.iter().product();
    let values: Vec<f64> = uniform(name, n).into_iter().map(|v| 2.0 * v).collect();
    Tensor::from_vec(values, dims, device)?.to_dtype(dtype)
}

/// The synthetic values of tensor `name` with `shape`, in f64.
pub fn synthetic_values(name: &str, dims: &[usize]) -> Vec<f64> {
    let n: usize = dims.iter().product();
    let fan_in: usize = dims.iter().skip(1).product::<usize>().max(1);
    let he = (6.0 / fan_in as f64).sqrt();
    let map: Box<dyn Fn(f64) -> f64> = if name.ends_with("running_var") {
        Box::new(|v| 1.0 + 0.5 * v)
    } else if name.ends_with("running_mean") {
        Box::new(|v| 0.1 * v)
    } else if name.ends_with("relative_position_bias_table") {
        Box::new(|v| 0.02 * v)
    } else if name.ends_with("bias") {
        Box::new(|v| 0.1 * v)
    } else if dims.len() == 1 {
        Box::new(|v| 1.0 + 0.2 * v)
    } else {
        Box::new(move |v| v * he)
    };
    uniform(name, n).into_iter().map(map).collect()
}

/// A [`VarBuilder`] backend that makes every requested tensor with [`synthetic_values`] and
/// records the names and shapes it was asked for (for parameter counts and name listings).
#[derive(Default)]
pub struct SyntheticWeights {
    requested: Mutex<Vec<(String, Vec<usize>)>>,
}

impl SyntheticWeights {
    /// A fresh backend.
    pub fn new() -> Self {
        Self::default()
    }

    /// The `(name, shape)` of every tensor requested so far, in request order.
    pub fn requested(&self) -> Vec<(String, Vec<usize>)> {
        self.requested.lock().expect("not poisoned").clone()
    }
}

impl SimpleBackend for SyntheticWeights {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        self.requested
            .lock()
            .expect("not poisoned")
            .push((name.to_owned(), s.dims().to_vec()));
        Tensor::from_vec(synthetic_values(name, s.dims()), s, dev)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        candle_core::bail!("synthetic weights need a shape for {name}")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

/// A [`VarBuilder`] over [`SyntheticWeights`], plus a handle to read what was requested.
pub fn synthetic_var_builder(
    dtype: DType,
    device: &Device,
) -> (VarBuilder<'static>, std::sync::Arc<SyntheticWeights>) {
    let backend = std::sync::Arc::new(SyntheticWeights::new());
    let vb = VarBuilder::from_backend(
        Box::new(SharedBackend(backend.clone())),
        dtype,
        device.clone(),
    );
    (vb, backend)
}

/// Lets the caller keep a handle on the backend the builder owns.
struct SharedBackend(std::sync::Arc<SyntheticWeights>);

impl SimpleBackend for SharedBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        self.0.get(s, name, h, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.0.get_unchecked(name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.contains_tensor(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_depend_only_on_name_and_shape() {
        let a = synthetic_values("layer1.0.conv1.weight", &[64, 64, 1, 1]);
        assert_eq!(
            a,
            synthetic_values("layer1.0.conv1.weight", &[64, 64, 1, 1])
        );
        assert_ne!(
            a[..8],
            synthetic_values("layer1.0.conv2.weight", &[64, 64, 1, 1])[..8]
        );
        let bound = (6.0f64 / 64.0).sqrt();
        assert!(a.iter().all(|v| v.abs() <= bound));
        let var = synthetic_values("bn1.running_var", &[64]);
        assert!(var.iter().all(|&v| (0.5..1.5).contains(&v)));
    }

    #[test]
    fn first_values_are_pinned() {
        // The same numbers as tests/reference/backbones/synthetic.py prints.
        assert_eq!(
            synthetic_values("x.bias", &[3]),
            [
                -0.08385786757730317,
                -0.0935034579943755,
                0.01026090542199114
            ]
        );
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
