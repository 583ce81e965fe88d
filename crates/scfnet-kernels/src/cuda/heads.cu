// The queries, keys or values of a fused attention projection split into heads (scfnet-ops'
// heads.rs): (B, N, 3C) -> (B, heads, N, C/heads) times a scale, and the gradient back, the other
// two parts zero. Blocks of 32 x 8 threads: a token row per threadIdx.y, its channels along
// threadIdx.x, 32-bit arithmetic (the host checks the sizes against 2^31).
#include "common.cuh"

// The sizes after the buffers: token rows (B*N), tokens per image, channels of a part, heads,
// which part (0, 1, 2), and the scale.
#define HEADS_SIZES unsigned rows, unsigned n, unsigned c, unsigned heads, unsigned part

// The offset in the heads of channel k of token row r.
__host__ __device__ inline size_t head_offset(unsigned r, unsigned k, unsigned n, unsigned c,
                                              unsigned heads) {
    unsigned hd = c / heads;
    unsigned b = r / n, t = r - b * n;
    unsigned hh = k / hd, d = k - hh * hd;
    return (((size_t)b * heads + hh) * n + t) * hd + d;
}

template <typename T>
__device__ void qkv_heads_split(const T* qkv, T* out, HEADS_SIZES, T scale) {
    FOR_EACH_BLOCK_ROW(r, rows) {
        const T* src = qkv + (size_t)r * 3 * c + (size_t)part * c;
        for (unsigned k = threadIdx.x; k < c; k += blockDim.x)
            out[head_offset(r, k, n, c, heads)] = src[k] * scale;
    }
}

template <typename T>
__device__ void qkv_heads_grad(const T* g, T* dqkv, HEADS_SIZES, T scale) {
    FOR_EACH_BLOCK_ROW(r, rows) {
        T* row = dqkv + (size_t)r * 3 * c;
        for (unsigned j = threadIdx.x; j < 3 * c; j += blockDim.x) {
            unsigned p = j / c;
            row[j] = p == part ? g[head_offset(r, j - p * c, n, c, heads)] * scale : (T)0;
        }
    }
}

#define HEADS_KERNELS(T, SUFFIX)                                                                 \
    extern "C" __global__ void qkv_heads_split_##SUFFIX(const T* qkv, T* out, HEADS_SIZES,       \
                                                        T scale) {                               \
        qkv_heads_split(qkv, out, rows, n, c, heads, part, scale);                              \
    }                                                                                            \
    extern "C" __global__ void qkv_heads_grad_##SUFFIX(const T* g, T* dqkv, HEADS_SIZES,         \
                                                       T scale) {                                \
        qkv_heads_grad(g, dqkv, rows, n, c, heads, part, scale);                                \
    }

HEADS_KERNELS(float, f32)
HEADS_KERNELS(double, f64)
