// Stands in for candle-kernels' compatibility.cuh when build.sh compiles candle's kernels for the
// host: the toolkit's half-precision headers, and the device intrinsics candle's f32 and f64
// kernels use, as host functions (one OS thread runs every emulated thread, so the atomics are
// plain read-modify-writes).
#pragma once
#include "cuda_fp16.h"
#include "cuda_bf16.h"
#include "cuda_fp8.h"
#include <climits>
#include <cstring>

template <class T> T atomicCAS(T* at, T compare, T value) { T old = *at; if (old == compare) *at = value; return old; }
template <class T> T atomicMax(T* at, T v) { T old = *at; if (v > old) *at = v; return old; }
template <class T> T atomicMin(T* at, T v) { T old = *at; if (v < old) *at = v; return old; }
inline long long __double_as_longlong(double x) { long long u; std::memcpy(&u, &x, 8); return u; }
inline double __longlong_as_double(long long u) { double x; std::memcpy(&x, &u, 8); return x; }
inline unsigned __float_as_uint(float x) { unsigned u; std::memcpy(&u, &x, 4); return u; }
inline float __uint_as_float(unsigned u) { float x; std::memcpy(&x, &u, 4); return x; }
inline int __float_as_int(float x) { int u; std::memcpy(&u, &x, 4); return u; }
inline float __int_as_float(int u) { float x; std::memcpy(&x, &u, 4); return x; }
using std::isinf;
using std::isnan;
inline float normcdff(float x) { return 0.5f * std::erfc(-x * 0.70710678118654752f); }
inline double normcdf(double x) { return 0.5 * std::erfc(-x * 0.70710678118654752440); }
// The shuffle with a width (candle's reductions pass 32, a whole warp).
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width) {
  if (width != 32) simt::fail("a shuffle narrower than a warp (not emulated)");
  return simt::shuffle(mask, v, lane_mask, true);
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width) {
  if (width != 32) simt::fail("a shuffle narrower than a warp (not emulated)");
  return simt::shuffle(mask, v, (int)delta, false);
}
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
