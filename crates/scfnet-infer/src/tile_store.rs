//! How the direct convolution kernels ([`crate::direct_conv`], [`crate::pointwise_conv`]) store
//! a register tile of [`GROUP`] output channels × `8·V` pixels: bias, activation and residual
//! applied in registers, with the operations of the tiled kernel's epilogue
//! ([`crate::tiled`]'s `tail`), so every kernel gives the same values after the sums.

use scfnet_ops::Activation;

/// Output channels computed together.
pub(crate) const GROUP: usize = 4;

/// Most vectors of 8 pixels per channel in one tile.
pub(crate) const MAX_VECTORS: usize = 4;

/// Bias per channel of a group and the activation, applied before the values are stored.
pub(crate) type Epilogue = Option<([f32; GROUP], Activation)>;

/// The epilogue of group `grp`: its channels' biases (zero past the layer's last channel) and
/// the activation.
pub(crate) fn group_epilogue(bias: &[f32], grp: usize, act: Activation) -> Epilogue {
    let biases = std::array::from_fn(|r| bias.get(grp * GROUP + r).copied().unwrap_or(0.0));
    Some((biases, act))
}

/// Where and how a group's sums are stored.
pub(crate) struct Store {
    /// One output row per channel (channels past the layer's last go to scratch rows).
    pub targets: [*mut f32; GROUP],
    /// Values per row: stores are clipped there.
    pub ow: usize,
    /// Bias and activation, or none (raw sums).
    pub epilogue: Epilogue,
    /// After the epilogue, `then(v + residual)`: the residual at the same positions as each
    /// target (read up to `ow` values), and `then`.
    pub residual: Option<([*const f32; GROUP], Activation)>,
}

impl Store {
    /// Stores the `8·V` sums from pixel `x0` of each channel (bias and activation first when
    /// asked for, then the residual), clipped at `ow`.
    ///
    /// # Safety
    /// AVX2; each target valid for writing `ow` values, each residual row for reading `ow`.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn write<const V: usize>(
        &self,
        acc: [[std::arch::x86_64::__m256; V]; GROUP],
        x0: usize,
    ) {
        use std::arch::x86_64::*;
        const { assert!(V <= MAX_VECTORS) };
        let whole = x0 + 8 * V <= self.ow;
        let n = self.ow.saturating_sub(x0).min(8 * V);
        for (r, a) in acc.into_iter().enumerate() {
            let mut a = a;
            if let Some((bias, act)) = self.epilogue {
                let b = _mm256_set1_ps(bias[r]);
                for v in a.iter_mut() {
                    *v = activate(_mm256_add_ps(*v, b), act);
                }
            }
            if let Some((rows, then)) = self.residual {
                let src = rows[r].add(x0);
                let mut tmp = [0f32; 8 * MAX_VECTORS];
                let src = if whole {
                    src
                } else {
                    std::ptr::copy_nonoverlapping(src, tmp.as_mut_ptr(), n);
                    tmp.as_ptr()
                };
                for (j, v) in a.iter_mut().enumerate() {
                    let res = _mm256_loadu_ps(src.add(8 * j));
                    *v = activate(_mm256_add_ps(*v, res), then);
                }
            }
            let dst = self.targets[r].add(x0);
            if whole {
                for (j, &v) in a.iter().enumerate() {
                    _mm256_storeu_ps(dst.add(8 * j), v);
                }
            } else {
                let mut tmp = [0f32; 8 * MAX_VECTORS];
                for (j, &v) in a.iter().enumerate() {
                    _mm256_storeu_ps(tmp.as_mut_ptr().add(8 * j), v);
                }
                std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, n);
            }
        }
    }
}

/// `act(v)` lane by lane, the operations of `scfnet_ops::cpu::bias_activate_row` (so the values equal
/// the tiled kernel's epilogue): ReLU `max(v, 0)`, hard-swish `v · min(max(v + 3, 0), 6) / 6`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn activate(
    v: std::arch::x86_64::__m256,
    act: Activation,
) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let zero = _mm256_setzero_ps();
    match act {
        Activation::None => v,
        Activation::Relu => _mm256_max_ps(v, zero),
        Activation::HardSwish => {
            let six = _mm256_set1_ps(6.0);
            let clip = _mm256_min_ps(
                _mm256_max_ps(_mm256_add_ps(v, _mm256_set1_ps(3.0)), zero),
                six,
            );
            _mm256_div_ps(_mm256_mul_ps(v, clip), six)
        }
    }
}
