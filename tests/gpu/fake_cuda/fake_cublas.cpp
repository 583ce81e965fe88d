// A fake cuBLAS (`libcublas.so.13`) for the fake CUDA driver (`fake_driver.cpp`): the strided
// batched products that candle and scfnet's convolutions call, computed on the host (device
// pointers are host addresses there), in column-major order as cuBLAS defines them. TF32 and
// bf16 compute types round each factor to 10 and 7 mantissa bits first, as tensor cores do;
// sums are kept in double and rounded once. Host scalars (alpha, beta) only. Each product's
// factors are first copied into rows of doubles, so that the sums run over contiguous memory
// (a Swin-B step at 384, batch 1, in about six minutes of emulation on 2 cores).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#define FAKE_CENSUS_LIBRARY "libcublas"
#include "census.h"
#include "rounding.h"

namespace {
enum { OP_N = 0 };  // any other operation (T, C) transposes: the data are real
enum { R_32F = 0, R_64F = 1, R_16F = 2, R_16BF = 14 };
enum { COMPUTE_32F = 68, COMPUTE_32F_PEDANTIC = 69, COMPUTE_64F = 70, COMPUTE_64F_PEDANTIC = 71,
       COMPUTE_32F_FAST_16F = 74, COMPUTE_32F_FAST_16BF = 75, COMPUTE_32F_FAST_TF32 = 77 };
const int STATUS_SUCCESS = 0, STATUS_NOT_SUPPORTED = 15;
int handle_token;

template <class T>
void gemm(int ta, int tb, int m, int n, int k, double alpha, const T* a, int lda, long long sa,
          const T* b, int ldb, long long sb, double beta, T* c, int ldc, long long sc, int batches,
          int factor_bits) {
  auto factor = [&](T v) {
    return factor_bits ? (double)round_mantissa((float)v, factor_bits) : (double)v;
  };
  // Row i of `rows_a` is A's row i, row j of `rows_b` is B's column j: op(A) (m × k) times
  // op(B) (k × n) is then a dot product of two rows per element.
  std::vector<double> rows_a((size_t)m * k), rows_b((size_t)n * k);
  for (int q = 0; q < batches; ++q) {
    const T* A = a + q * sa;
    const T* B = b + q * sb;
    T* C = c + q * sc;
    for (int i = 0; i < m; ++i)
      for (int l = 0; l < k; ++l)
        rows_a[(size_t)i * k + l] = factor(ta == OP_N ? A[i + (long long)l * lda] : A[l + (long long)i * lda]);
    for (int j = 0; j < n; ++j)
      for (int l = 0; l < k; ++l)
        rows_b[(size_t)j * k + l] = factor(tb == OP_N ? B[l + (long long)j * ldb] : B[j + (long long)l * ldb]);
    for (int j = 0; j < n; ++j) {
      const double* y = &rows_b[(size_t)j * k];
      for (int i = 0; i < m; ++i) {
        const double* x = &rows_a[(size_t)i * k];
        double s[4] = {0.0, 0.0, 0.0, 0.0};
        int l = 0;
        for (; l + 4 <= k; l += 4)
          for (int u = 0; u < 4; ++u) s[u] += x[l + u] * y[l + u];
        for (; l < k; ++l) s[0] += x[l] * y[l];
        double sum = (s[0] + s[1]) + (s[2] + s[3]);
        T& out = C[i + (long long)j * ldc];
        // cuBLAS does not read C when beta is 0 (it may hold NaN).
        out = (T)(beta == 0.0 ? alpha * sum : alpha * sum + beta * (double)out);
      }
    }
  }
}

// The census's row for a product: its types and compute type, its multiply-adds.
void count(const char* what, int m, int n, int k, int batches) {
  census().add("product", what, (uint64_t)m * n * k * batches);
}
}  // namespace

extern "C" {
int cublasCreate_v2(void** h) { *h = &handle_token; return STATUS_SUCCESS; }
int cublasDestroy_v2(void*) { return STATUS_SUCCESS; }
int cublasSetStream_v2(void*, void*) { return STATUS_SUCCESS; }

int cublasGemmStridedBatchedEx(void*, int ta, int tb, int m, int n, int k, const void* alpha,
                               const void* a, int at, int lda, long long sa, const void* b, int bt,
                               int ldb, long long sb, const void* beta, void* c, int ct, int ldc,
                               long long sc, int batches, int compute, int) {
  if (at == R_32F && bt == R_32F && ct == R_32F) {
    int bits = compute == COMPUTE_32F_FAST_TF32   ? TF32_BITS
               : compute == COMPUTE_32F_FAST_16BF ? BF16_BITS
                                                  : 0;
    if (compute != COMPUTE_32F && compute != COMPUTE_32F_PEDANTIC && bits == 0) {
      std::fprintf(stderr, "fake cuBLAS: f32 product with compute type %d not emulated\n", compute);
      return STATUS_NOT_SUPPORTED;
    }
    count(bits == TF32_BITS ? "gemm f32 (tf32)" : bits ? "gemm f32 (bf16)" : "gemm f32", m, n, k, batches);
    gemm<float>(ta, tb, m, n, k, *(const float*)alpha, (const float*)a, lda, sa, (const float*)b,
                ldb, sb, *(const float*)beta, (float*)c, ldc, sc, batches, bits);
    return STATUS_SUCCESS;
  }
  if (at == R_64F && bt == R_64F && ct == R_64F) {
    count("gemm f64", m, n, k, batches);
    gemm<double>(ta, tb, m, n, k, *(const double*)alpha, (const double*)a, lda, sa,
                 (const double*)b, ldb, sb, *(const double*)beta, (double*)c, ldc, sc, batches, 0);
    return STATUS_SUCCESS;
  }
  std::fprintf(stderr, "fake cuBLAS: product of types %d × %d → %d not emulated\n", at, bt, ct);
  return STATUS_NOT_SUPPORTED;
}

int cublasDgemmStridedBatched(void*, int ta, int tb, int m, int n, int k, const double* alpha,
                              const double* a, int lda, long long sa, const double* b, int ldb,
                              long long sb, const double* beta, double* c, int ldc, long long sc,
                              int batches) {
  count("dgemm", m, n, k, batches);
  gemm<double>(ta, tb, m, n, k, *alpha, a, lda, sa, b, ldb, sb, *beta, c, ldc, sc, batches, 0);
  return STATUS_SUCCESS;
}
}
