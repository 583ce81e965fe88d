//! The float element types our CPU kernels are generic over, and storage helpers.

use candle_core::{bail, Layout, Result};

/// `f32` or `f64`: the arithmetic the kernels need, without an extra dependency.
pub(crate) trait Real:
    Copy
    + Default
    + PartialOrd
    + Send
    + Sync
    + std::fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::ops::AddAssign
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    const NEG_INFINITY: Self;
    fn from_f64(v: f64) -> Self;
    fn from_usize(v: usize) -> Self;
    fn floor_to_usize(self) -> usize;
    fn is_nan(self) -> bool;
    fn exp(self) -> Self;
    fn ln_1p(self) -> Self;
    fn abs(self) -> Self;
    fn max(self, other: Self) -> Self;
    fn min(self, other: Self) -> Self;
}

macro_rules! impl_real {
    ($t:ty) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn from_usize(v: usize) -> Self {
                v as $t
            }
            #[inline]
            fn floor_to_usize(self) -> usize {
                self as usize
            }
            #[inline]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            #[inline]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline]
            fn ln_1p(self) -> Self {
                <$t>::ln_1p(self)
            }
            #[inline]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline]
            fn min(self, other: Self) -> Self {
                <$t>::min(self, other)
            }
        }
    };
}
impl_real!(f32);
impl_real!(f64);

/// Whether `T` is `f32`.
pub(crate) fn is_f32<T: 'static>() -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
}

/// `v` as f32 values; only called when [`is_f32`] holds.
pub(crate) fn f32s<T: 'static>(v: &[T]) -> &[f32] {
    assert!(is_f32::<T>());
    // SAFETY: `T` is `f32` (checked), so the slice is one of f32 values.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), v.len()) }
}

/// `v` as f32 values; only called when [`is_f32`] holds.
pub(crate) fn f32s_mut<T: 'static>(v: &mut [T]) -> &mut [f32] {
    assert!(is_f32::<T>());
    // SAFETY: `T` is `f32` (checked), so the slice is one of f32 values.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), v.len()) }
}

/// `v` as values of `B`, which is `A` (checked at run time): for code generic over [`Real`]
/// that holds a buffer of one concrete type.
pub(crate) fn same_type_mut<A: 'static, B: 'static>(v: &mut [A]) -> &mut [B] {
    assert_eq!(std::any::TypeId::of::<A>(), std::any::TypeId::of::<B>());
    // SAFETY: `A` and `B` are the same type (checked).
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), v.len()) }
}

/// The contiguous range `(start, end)` of `layout` in its storage, or an error naming `op`
/// (the in-place ops' operands).
pub(crate) fn contiguous_range(op: &str, layout: &Layout) -> Result<(usize, usize)> {
    match layout.contiguous_offsets() {
        Some(range) => Ok(range),
        None => bail!("{op}: operands must be contiguous"),
    }
}

/// The contiguous part of `data` that `layout` describes.
pub(crate) fn contiguous<'a, T>(op: &str, data: &'a [T], layout: &Layout) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: input must be contiguous (call .contiguous() first)"),
    }
}

/// Applies a generic kernel to an `f32` or `f64` storage; other dtypes are refused by name.
macro_rules! map_float {
    ($op:expr, $storage:expr, $layout:expr, |$data:ident| $body:expr) => {
        match $storage {
            candle_core::CpuStorage::F32(all) => {
                let $data = $crate::elem::contiguous($op, all, $layout)?;
                candle_core::CpuStorage::F32($body)
            }
            candle_core::CpuStorage::F64(all) => {
                let $data = $crate::elem::contiguous($op, all, $layout)?;
                candle_core::CpuStorage::F64($body)
            }
            other => candle_core::bail!(
                "{}: unsupported dtype {:?} (use f32 or f64)",
                $op,
                candle_core::backend::BackendStorage::dtype(other)
            ),
        }
    };
}
pub(crate) use map_float;

/// Applies a generic two-input kernel to two `f32` or two `f64` storages.
macro_rules! map_float2 {
    ($op:expr, $s1:expr, $l1:expr, $s2:expr, $l2:expr, |$a:ident, $b:ident| $body:expr) => {
        match ($s1, $s2) {
            (candle_core::CpuStorage::F32(x), candle_core::CpuStorage::F32(y)) => {
                let $a = $crate::elem::contiguous($op, x, $l1)?;
                let $b = $crate::elem::contiguous($op, y, $l2)?;
                candle_core::CpuStorage::F32($body)
            }
            (candle_core::CpuStorage::F64(x), candle_core::CpuStorage::F64(y)) => {
                let $a = $crate::elem::contiguous($op, x, $l1)?;
                let $b = $crate::elem::contiguous($op, y, $l2)?;
                candle_core::CpuStorage::F64($body)
            }
            (x, y) => candle_core::bail!(
                "{}: unsupported dtypes {:?} and {:?} (use two f32 or two f64 tensors)",
                $op,
                candle_core::backend::BackendStorage::dtype(x),
                candle_core::backend::BackendStorage::dtype(y)
            ),
        }
    };
}
pub(crate) use map_float2;

/// Applies a generic three-input kernel to three `f32` or three `f64` storages.
macro_rules! map_float3 {
    ($op:expr, $s1:expr, $l1:expr, $s2:expr, $l2:expr, $s3:expr, $l3:expr, |$a:ident, $b:ident, $c:ident| $body:expr) => {
        match ($s1, $s2, $s3) {
            (
                candle_core::CpuStorage::F32(x),
                candle_core::CpuStorage::F32(y),
                candle_core::CpuStorage::F32(z),
            ) => {
                let $a = $crate::elem::contiguous($op, x, $l1)?;
                let $b = $crate::elem::contiguous($op, y, $l2)?;
                let $c = $crate::elem::contiguous($op, z, $l3)?;
                candle_core::CpuStorage::F32($body)
            }
            (
                candle_core::CpuStorage::F64(x),
                candle_core::CpuStorage::F64(y),
                candle_core::CpuStorage::F64(z),
            ) => {
                let $a = $crate::elem::contiguous($op, x, $l1)?;
                let $b = $crate::elem::contiguous($op, y, $l2)?;
                let $c = $crate::elem::contiguous($op, z, $l3)?;
                candle_core::CpuStorage::F64($body)
            }
            _ => candle_core::bail!("{}: inputs must all be f32 or all f64", $op),
        }
    };
}
pub(crate) use map_float3;

/// `(B, C, H, W)` of a rank-4 layout, with a clear error naming the op `op` otherwise.
pub fn dims4(op: &str, layout: &Layout) -> Result<(usize, usize, usize, usize)> {
    match layout.shape().dims() {
        &[b, c, h, w] => Ok((b, c, h, w)),
        other => bail!("{op}: expected a (B, C, H, W) tensor, got shape {other:?}"),
    }
}
