// A fake cuBLAS (`libcublas.so.13`) for the fake CUDA driver (`fake_driver.cpp`): the strided
// batched products that candle and scfnet's convolutions call, computed on the host (device
// pointers are host addresses there), in column-major order as cuBLAS defines them. TF32 and
// bf16 compute types round each factor to 10 and 7 mantissa bits first, as tensor cores do;
// sums are kept in double and rounded once. Host scalars (alpha, beta) only.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>

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
  for (int q = 0; q < batches; ++q) {
    const T* A = a + q * sa;
    const T* B = b + q * sb;
    T* C = c + q * sc;
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < m; ++i) {
        double s = 0.0;
        for (int l = 0; l < k; ++l) {
          T x = ta == OP_N ? A[i + (long long)l * lda] : A[l + (long long)i * lda];
          T y = tb == OP_N ? B[l + (long long)j * ldb] : B[j + (long long)l * ldb];
          if (factor_bits) {
            x = (T)round_mantissa((float)x, factor_bits);
            y = (T)round_mantissa((float)y, factor_bits);
          }
          s += (double)x * (double)y;
        }
        T& out = C[i + (long long)j * ldc];
        // cuBLAS does not read C when beta is 0 (it may hold NaN).
        out = (T)(beta == 0.0 ? alpha * s : alpha * s + beta * (double)out);
      }
  }
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
    gemm<float>(ta, tb, m, n, k, *(const float*)alpha, (const float*)a, lda, sa, (const float*)b,
                ldb, sb, *(const float*)beta, (float*)c, ldc, sc, batches, bits);
    return STATUS_SUCCESS;
  }
  if (at == R_64F && bt == R_64F && ct == R_64F) {
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
  gemm<double>(ta, tb, m, n, k, *alpha, a, lda, sa, b, ldb, sb, *beta, c, ldc, sc, batches, 0);
  return STATUS_SUCCESS;
}
}
