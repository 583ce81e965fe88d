// The factor rounding of tensor cores, shared by the fake cuBLAS and the fake cuDNN: a product
// in TF32 (10 mantissa bits) or bf16 (7) rounds each f32 factor first, then sums.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

// `x` with its mantissa rounded to `bits` bits, to nearest, ties to even (NaN and ±inf as they are).
inline float round_mantissa(float x, int bits) {
  if (!std::isfinite(x)) return x;
  uint32_t u;
  std::memcpy(&u, &x, 4);
  int drop = 23 - bits;
  uint32_t half = 1u << (drop - 1), mask = (1u << drop) - 1;
  uint32_t rest = u & mask;
  u &= ~mask;
  if (rest > half || (rest == half && (u >> drop) & 1)) u += 1u << drop;
  std::memcpy(&x, &u, 4);
  return x;
}

const int TF32_BITS = 10, BF16_BITS = 7;
