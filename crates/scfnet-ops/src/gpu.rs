//! What the ops' CUDA launches share (the `cuda` feature): typed views of contiguous storages,
//! new buffers, and the kernel name for an element type.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::cublas;
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, DeviceRepr, LaunchConfig, ValidAsZeroBits,
};
use candle_core::cuda_backend::CudaDType;
use candle_core::{CudaDevice, CudaStorage, Layout, Result};

use crate::precision::ProductPrecision;

/// `f32` or `f64` on the GPU: every kernel is compiled for both, named `{kernel}_{SUFFIX}`.
pub(crate) trait GpuFloat: CudaDType + DeviceRepr + ValidAsZeroBits + Copy {
    /// The suffix of the kernels for this type.
    const SUFFIX: &'static str;
    /// cuBLAS's name of the type.
    const DATA: cublas::sys::cudaDataType;
    /// 1 and 0 of the type (the factors of a matrix product).
    const ONE: Self;
    /// 0 of the type.
    const ZERO: Self;
    /// `v` rounded to the type (a kernel's scalar argument).
    fn from_f64(v: f64) -> Self;
    /// cuBLAS's compute type for a product: for `f32`, full f32 or TF32 / bf16 tensor cores
    /// (factors rounded, f32 sums) as `products` says; f64 always exact.
    fn compute(products: ProductPrecision) -> cublas::sys::cublasComputeType_t;
}

impl GpuFloat for f32 {
    const SUFFIX: &'static str = "f32";
    const DATA: cublas::sys::cudaDataType = cublas::sys::cudaDataType::CUDA_R_32F;
    const ONE: Self = 1.0;
    const ZERO: Self = 0.0;
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn compute(products: ProductPrecision) -> cublas::sys::cublasComputeType_t {
        use cublas::sys::cublasComputeType_t::{
            CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_32F_FAST_16BF, CUBLAS_COMPUTE_32F_FAST_TF32,
        };
        match products {
            ProductPrecision::F32 => CUBLAS_COMPUTE_32F,
            ProductPrecision::Tf32 => CUBLAS_COMPUTE_32F_FAST_TF32,
            ProductPrecision::Bf16 => CUBLAS_COMPUTE_32F_FAST_16BF,
        }
    }
}

impl GpuFloat for f64 {
    const SUFFIX: &'static str = "f64";
    const DATA: cublas::sys::cudaDataType = cublas::sys::cudaDataType::CUDA_R_64F;
    const ONE: Self = 1.0;
    const ZERO: Self = 0.0;
    fn from_f64(v: f64) -> Self {
        v
    }
    fn compute(_products: ProductPrecision) -> cublas::sys::cublasComputeType_t {
        cublas::sys::cublasComputeType_t::CUBLAS_COMPUTE_64F
    }
}

/// One operand of [`gemm`]: a row-major matrix in a device buffer, used as stored or transposed,
/// and the distance between the matrices of consecutive batch entries (0: the same matrix for
/// all).
pub(crate) struct Operand<'a, T> {
    /// The values.
    pub(crate) data: &'a CudaView<'a, T>,
    /// Whether the product uses the transpose of the stored matrix.
    pub(crate) transposed: bool,
    /// Elements between consecutive batch entries.
    pub(crate) stride: usize,
}

impl<'a, T> Operand<'a, T> {
    /// The same matrix for every product of the batch (stride 0), or the one matrix of a batch
    /// of one.
    pub(crate) fn same(data: &'a CudaView<'a, T>, transposed: bool) -> Self {
        Operand {
            data,
            transposed,
            stride: 0,
        }
    }
}

/// `C_i = A_i · B_i` for `batch` row-major products (`A_i` `(m, k)`, `B_i` `(k, n)` after any
/// transposition, `C_i` `(m, n)` at `c + i·m·n`) in one cuBLAS call; for `f32`, multiplied as
/// `products` says.
pub(crate) fn gemm<T: GpuFloat>(
    dev: &CudaDevice,
    (batch, m, n, k): (usize, usize, usize, usize),
    a: Operand<'_, T>,
    b: Operand<'_, T>,
    c: &mut CudaSlice<T>,
    products: ProductPrecision,
) -> Result<()> {
    use candle_core::cuda_backend::cudarc::driver::{DevicePtr, DevicePtrMut};
    use candle_core::cuda_backend::WrapErr;
    use cublas::sys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
    let int = |v: usize| -> Result<i32> {
        i32::try_from(v)
            .map_err(|_| candle_core::Error::Msg(format!("gemm: size {v} exceeds cuBLAS's int")))
    };
    // Row-major C (m×n) = A·B is column-major Cᵀ (n×m) = Bᵀ·Aᵀ: cuBLAS gets B first. A stored
    // row-major (r×c) matrix is a column-major (c×r) one with leading dimension c.
    let (op_b, ld_b) = if b.transposed {
        (CUBLAS_OP_T, k)
    } else {
        (CUBLAS_OP_N, n)
    };
    let (op_a, ld_a) = if a.transposed {
        (CUBLAS_OP_T, m)
    } else {
        (CUBLAS_OP_N, k)
    };
    let (alpha, beta) = (T::ONE, T::ZERO);
    let blas = dev.cublas_handle();
    let stream = dev.cuda_stream();
    let (pa, _ga) = a.data.device_ptr(&stream);
    let (pb, _gb) = b.data.device_ptr(&stream);
    let (pc, _gc) = c.device_ptr_mut(&stream);
    // SAFETY: the caller sized the buffers for `batch` products of these shapes and strides.
    unsafe {
        cublas::result::gemm_strided_batched_ex(
            *blas.handle(),
            op_b,
            op_a,
            int(n)?,
            int(m)?,
            int(k)?,
            (&alpha as *const T).cast(),
            pb as *const _,
            T::DATA,
            int(ld_b)?,
            b.stride as i64,
            pa as *const _,
            T::DATA,
            int(ld_a)?,
            a.stride as i64,
            (&beta as *const T).cast(),
            pc as *mut _,
            T::DATA,
            int(n)?,
            (m * n) as i64,
            int(batch)?,
            T::compute(products),
            cublas::sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )
        .w()?;
    }
    Ok(())
}

/// The name of `kernel` for `T` (`dw_fwd` → `dw_fwd_f32`).
pub(crate) fn kernel<T: GpuFloat>(kernel: &str) -> String {
    format!("{kernel}_{}", T::SUFFIX)
}

/// The values of a contiguous `storage` under `layout`, as a device view.
pub(crate) fn view<'a, T: GpuFloat>(
    op: &str,
    storage: &'a CudaStorage,
    layout: &Layout,
) -> Result<CudaView<'a, T>> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(storage.as_cuda_slice::<T>()?.slice(start..end)),
        None => candle_core::bail!("{op} (cuda): input must be contiguous"),
    }
}

/// A new buffer of `n` values that the kernel will write in full (an output, or the f64 partial
/// sums of a reduction).
pub(crate) fn output<T: GpuFloat>(dev: &CudaDevice, n: usize) -> Result<CudaSlice<T>> {
    // SAFETY: every caller launches a kernel that writes all `n` values before any read.
    unsafe { dev.alloc::<T>(n.max(1)) }
}

/// One thread per element of `n` in blocks of 256 (at least one block, at most 2²⁰: the kernels
/// loop over the grid when there are more elements).
pub(crate) fn per_element(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (n.div_ceil(256).clamp(1, 1 << 20) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Blocks of 32 × 8 threads for `rows` rows, a row per `threadIdx.y` and its values along
/// `threadIdx.x`, at most 2²⁰ blocks (the kernels loop over the rows beyond): the shape of the
/// row gathers (`windows.cu`, `heads.cu`; `FOR_EACH_BLOCK_ROW` in `common.cuh`).
pub(crate) fn rows_of_32x8(rows: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows.div_ceil(8).clamp(1, 1 << 20) as u32, 1, 1),
        block_dim: (32, 8, 1),
        shared_mem_bytes: 0,
    }
}

/// Planes along the grid's y (at most 65,535; the kernels loop over the rest) and the `n`
/// elements of a plane along x in blocks of 256: the shape of the kernels that index within a
/// plane in 32-bit arithmetic, hence an error when a plane holds 2³¹ elements or more.
pub(crate) fn per_plane(op: &str, planes: usize, n: usize) -> Result<LaunchConfig> {
    if n >= 1 << 31 {
        candle_core::bail!(
            "{op} (cuda): {n} elements in one plane exceed the kernels' 32-bit index"
        );
    }
    Ok(LaunchConfig {
        grid_dim: (
            n.div_ceil(256).clamp(1, 1 << 16) as u32,
            planes.clamp(1, 65_535) as u32,
            1,
        ),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// `n` (the length of a row the kernels index in 32-bit arithmetic) as `u32`, or an error
/// naming `op`.
pub(crate) fn row_length_u32(op: &str, n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| {
        candle_core::Error::Msg(format!("{op} (cuda): rows of {n} values are too long"))
    })
}

/// Wraps a buffer as a storage on `storage`'s device.
pub(crate) fn wrap<T: GpuFloat>(storage: &CudaStorage, out: CudaSlice<T>) -> CudaStorage {
    CudaStorage::wrap_cuda_slice(out, storage.device().clone())
}

/// Runs `$f::<f32>(args)` or `$f::<f64>(args)` after the element type of `$storage` (a
/// `&CudaStorage`); others are an error naming the op. While a [`crate::profile`] records, the
/// call is timed as `$op`.
macro_rules! by_float {
    ($op:expr, $storage:expr, $($f:ident)::+($($arg:expr),* $(,)?)) => {{
        let storage: &candle_core::CudaStorage = $storage;
        let dev = candle_core::backend::BackendStorage::device(storage);
        $crate::profile::timed(
            $op,
            || candle_core::backend::BackendDevice::synchronize(dev),
            || match candle_core::backend::BackendStorage::dtype(storage) {
                candle_core::DType::F32 => $($f)::+::<f32>($($arg),*),
                candle_core::DType::F64 => $($f)::+::<f64>($($arg),*),
                other => candle_core::bail!("{} (cuda): unsupported dtype {other:?}", $op),
            },
        )
    }};
}
pub(crate) use by_float;
