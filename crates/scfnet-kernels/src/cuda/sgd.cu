// The SGD-with-momentum update of many parameters in place, as scfnet-ops' CPU kernels (sgd.rs)
// and candle's composition compute it: g' = g + (w·λ + 0) when λ ≠ 0, v ← (v·μ + 0) + g',
// w ← w − (v·s + 0). One launch per chunk of up to SGD_CHUNK parameters (their pointers and
// settings passed by value as the kernel's argument, 3,584 bytes, under the 4 KiB that every
// GPU takes): the parameter along the grid's y, its values along x, one thread per value.
#include "common.cuh"

#define SGD_CHUNK 64

// The parameters of one launch; entries beyond gridDim.y are unused. The same layout as
// sgd.rs's `SgdChunk` (all fields 8 bytes wide: no padding).
template <typename T>
struct SgdChunk {
    T* w[SGD_CHUNK];
    T* v[SGD_CHUNK];
    const T* g[SGD_CHUNK];
    unsigned long long n[SGD_CHUNK];
    double momentum[SGD_CHUNK];
    double decay[SGD_CHUNK];
    double step[SGD_CHUNK];
};

template <typename T>
__host__ __device__ inline void sgd_update(T* w, T* v, const T* g, size_t i, T m, T d, bool decayed,
                                           T s) {
    T gi = g[i];
    if (decayed) gi = gi + (w[i] * d + (T)0);
    T vi = (v[i] * m + (T)0) + gi;
    v[i] = vi;
    w[i] = w[i] - (vi * s + (T)0);
}

template <typename T>
__device__ void sgd_chunk(const SgdChunk<T>& c) {
    unsigned p = blockIdx.y;
    T* w = c.w[p];
    T* v = c.v[p];
    const T* g = c.g[p];
    size_t n = (size_t)c.n[p];
    T m = (T)c.momentum[p], d = (T)c.decay[p], s = (T)c.step[p];
    bool decayed = c.decay[p] != 0.0;
    FOR_EACH_INDEX(i, n) sgd_update(w, v, g, i, m, d, decayed, s);
}

extern "C" __global__ void sgd_chunk_f32(const SgdChunk<float> c) { sgd_chunk<float>(c); }
extern "C" __global__ void sgd_chunk_f64(const SgdChunk<double> c) { sgd_chunk<double>(c); }
