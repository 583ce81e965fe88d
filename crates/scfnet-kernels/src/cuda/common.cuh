// Helpers shared by the kernels (included, not compiled on its own: build.rs compiles only
// `.cu` files).
#pragma once

// Grid-stride loop over `n` elements, one index per thread per round.
#define FOR_EACH_INDEX(i, n)                                                        \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n);         \
         i += (size_t)blockDim.x * gridDim.x)

// Planes along the grid's y (looping when there are more than it holds), the `n` elements of a
// plane along x in 32-bit arithmetic (64-bit division costs tens of instructions on a GPU).
#define FOR_EACH_PLANE_ELEMENT(plane, r, planes, n)                                 \
    for (size_t plane = blockIdx.y; plane < (planes); plane += gridDim.y)           \
        for (unsigned r = blockIdx.x * blockDim.x + threadIdx.x; r < (unsigned)(n); \
             r += blockDim.x * gridDim.x)

// Rows along threadIdx.y of blocks of 32 x 8 threads (a row's values along threadIdx.x), looping
// over the grid; 32-bit row numbers (the host checks that there are fewer than 2^31 rows).
#define FOR_EACH_BLOCK_ROW(r, rows)                                                  \
    for (unsigned r = blockIdx.x * blockDim.y + threadIdx.y; r < (unsigned)(rows); \
         r += gridDim.x * blockDim.y)

// The sum of `v` over the block (blockDim.x a multiple of 32, at most 1024), valid in thread 0.
// Every thread of the block must call it. Fixed order: deterministic.
__device__ inline double block_sum(double v) {
    __shared__ double part[32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();  // `part` may still be read by an earlier call
    if (lane == 0) part[warp] = v;
    __syncthreads();
    int warps = (blockDim.x + 31) >> 5;
    v = threadIdx.x < warps ? part[threadIdx.x] : 0.0;
    if (warp == 0) {
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    }
    return v;
}

// v clipped to [0, hi].
template <typename T>
__device__ inline T clip(T v, T hi) {
    return v < (T)0 ? (T)0 : (v > hi ? hi : v);
}

// Hard-swish x·clip(x + 3, 0, 6)/6 and the derivative PyTorch's backward takes (0 below −3,
// x/3 + 1/2 up to 3 inclusive, 1 above), as scfnet-ops' CPU kernels (activation.rs).
template <typename T>
__device__ inline T hard_swish(T x) {
    return x * clip(x + (T)3, (T)6) / (T)6;
}

template <typename T>
__device__ inline T hard_swish_derivative(T x) {
    if (x < (T)-3) return (T)0;
    if (x <= (T)3) return x / (T)3 + (T)0.5;
    return (T)1;
}

// The outputs o (lo ≤ o ≤ hi, within 0 ≤ o < n_out) whose window of k taps at dilation d,
// stride s, padding p can cover input i: o·s + t·d − p = i for a tap 0 ≤ t < k. With d = 1 every
// o of the range covers i (tap t = i + p − o·s, from the largest o, smallest tap, down); with
// d > 1 only those where d divides i + p − o·s. Empty when hi < lo.
__device__ inline void covering(int i, int k, int s, int p, int d, int n_out, int* hi, int* lo) {
    int top = i + p;  // = o·s + t·d
    *hi = min(top / s, n_out - 1);
    int low = top - (k - 1) * d;
    *lo = low <= 0 ? 0 : (low + s - 1) / s;
}

// The images [lo, hi) of slice `slice` when `batch` images are cut into `slices` slices.
__device__ inline void batch_slice(size_t batch, size_t slices, size_t slice, size_t* lo,
                                   size_t* hi) {
    size_t per = (batch + slices - 1) / slices;
    *lo = slice * per;
    *hi = min(batch, *lo + per);
}

// Rows along warps: warp w of block b takes rows b·(warps per block) + w, then every
// (warps in the grid)-th row after it. The loop is uniform across a warp (every lane takes the
// same rows), as the warp reductions below need.
#define FOR_EACH_WARP_ROW(r, rows)                                                       \
    for (size_t r = (size_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); r < (rows); \
         r += (size_t)gridDim.x * (blockDim.x >> 5))

// The sum of `v` over the 32 lanes of a warp, the same value in every lane (a butterfly: lanes
// i and i^o add the same two values, and addition commutes). Every lane must call it.
__device__ inline double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// The largest `v` over the 32 lanes of a warp (NaN ignored, as fmax), in every lane.
template <typename T>
__device__ inline T warp_max(T v) {
    for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
