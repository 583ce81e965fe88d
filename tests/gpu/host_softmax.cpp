// A host build of softmax.cu (no GPU), against plain references with the CPU kernel's formulas
// (softmax.rs): e = exp(x − max) in the element type, the sum and the division in double;
// dx = y·(g − Σ g·y). Launched as `rows_per_warp` launches them (one warp per row, 8 rows to a
// block of 256 threads) and with a single block (the row loop wraps), the warp reductions
// (`warp_max`, `warp_sum`: butterflies of shuffles) run lane against lane by host_cuda.h's
// emulation. Rows shorter than, equal to and longer than a warp; values past the output
// must stay untouched. Sums in another order than the reference: within 1e-12 in double, 1e-6
// in float. CI builds and runs it (scfnet-kernels' test `host_builds`); by hand, from the
// repository root:
//
//   g++ -std=c++17 -w tests/gpu/host_softmax.cpp -o /tmp/host_softmax && /tmp/host_softmax
#include "host_cuda.h"
#include "../../crates/scfnet-kernels/src/cuda/softmax.cu"

template <typename T>
static int check(const char* type, double tol, int* cases) {
  int fails = 0;
  const size_t pad = 40;  // values past the output, which no kernel may write
  for (unsigned n : {1u, 5u, 32u, 33u, 49u, 144u})
    for (size_t rows : {1u, 7u, 20u})
      for (unsigned max_blocks : {1u << 20, 1u}) {
        ++*cases;
        std::vector<T> x(rows * n), g(rows * n);
        for (size_t i = 0; i < x.size(); ++i) x[i] = (T)(3.0 * std::sin(0.37 * i + 0.1 * n) + 0.01 * (i % 7));
        for (size_t i = 0; i < g.size(); ++i) g[i] = (T)std::cos(0.91 * i);
        // The references.
        std::vector<T> y_ref(x.size()), dx_ref(x.size());
        for (size_t r = 0; r < rows; ++r) {
          const T* xr = &x[r * n];
          T m = -INFINITY;
          for (unsigned j = 0; j < n; ++j) m = std::max(m, xr[j]);
          double s = 0.0;
          std::vector<T> e(n);
          for (unsigned j = 0; j < n; ++j) {
            e[j] = exp_of(xr[j] - m);
            s += (double)e[j];
          }
          for (unsigned j = 0; j < n; ++j) y_ref[r * n + j] = (T)((double)e[j] / s);
          double dot = 0.0;
          for (unsigned j = 0; j < n; ++j) dot += (double)y_ref[r * n + j] * (double)g[r * n + j];
          for (unsigned j = 0; j < n; ++j)
            dx_ref[r * n + j] = (T)((double)y_ref[r * n + j] * ((double)g[r * n + j] - dot));
        }
        std::vector<T> y(x.size() + pad, (T)-9), dx(x.size() + pad, (T)-9);
        run_rows_per_warp(rows, max_blocks, [&] { softmax_fwd<T>(x.data(), y.data(), rows, n); });
        run_rows_per_warp(rows, max_blocks, [&] { softmax_grad<T>(y_ref.data(), g.data(), dx.data(), rows, n); });
        auto compare = [&](const char* what, const std::vector<T>& a, const std::vector<T>& e) {
          for (size_t i = 0; i < a.size(); ++i) {
            double want = i < e.size() ? (double)e[i] : -9.0;
            if (std::fabs((double)a[i] - want) > tol * (1.0 + std::fabs(want)) && fails++ < 8)
              printf("%s %s n %u rows %zu blocks <= %u: %zu %g != %g\n", type, what, n, rows,
                     max_blocks, i, (double)a[i], want);
          }
        };
        compare("forward", y, y_ref);
        compare("gradient", dx, dx_ref);
      }
  return fails;
}

int main() {
  int cases = 0;
  int fails = check<double>("double", 1e-12, &cases) + check<float>("float", 1e-6, &cases);
  printf("host softmax: %d cases, %d mismatches\n", cases, fails);
  return fails != 0;
}
