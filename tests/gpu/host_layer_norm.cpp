// A host build of layer_norm.cu (no GPU), against plain references with the CPU kernel's
// formulas (layer_norm.rs): mean and biased variance in double (two passes), r = 1/√(σ² + ε),
// y = (x − μ)·r·γ + β; dx = r·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·γ; dγ = Σ dy·x̂ and
// dβ = Σ dy over the rows. The row kernels launched as `rows_per_warp` launches them (one warp
// per row, 8 rows to a block of 256 threads) and with a single block (the row loop wraps), their
// warp sums run lane against lane by host_cuda.h's emulation; the affine gradient's partial sums
// as the CPU code launches them (blocks of 128 columns × `row_slices(rows)` slices), then the
// finishing kernel. Rows shorter than, equal to and longer than a warp, column counts across
// the 128-column blocks, row counts over one slice; values past each output must stay untouched.
// Sums in another order than the reference: within 1e-12 in double, 1e-5 in float. CI builds
// and runs it (scfnet-kernels' test `host_builds`); by hand, from the repository root:
//
//   g++ -std=c++17 -w tests/gpu/host_layer_norm.cpp -o /tmp/host_layer_norm && /tmp/host_layer_norm
#include "host_cuda.h"
#include "../../crates/scfnet-kernels/src/cuda/layer_norm.cu"

template <typename T>
static int check(const char* type, double tol, int* cases) {
  int fails = 0;
  const size_t pad = 40;  // values past each output, which no kernel may write
  const double eps = 1e-5;
  for (unsigned c : {1u, 31u, 32u, 96u, 200u})
    for (size_t rows : {1u, 9u, 301u})
      for (unsigned max_blocks : {1u << 20, 1u}) {
        ++*cases;
        size_t n = rows * c;
        std::vector<T> x(n), dy(n), w(c), b(c);
        for (size_t i = 0; i < n; ++i) x[i] = (T)(2.0 * std::sin(0.61 * i) + 0.3 * (i % 5) + 1.0);
        for (size_t i = 0; i < n; ++i) dy[i] = (T)std::cos(0.29 * i + 0.5);
        for (size_t j = 0; j < c; ++j) w[j] = (T)(1.0 + 0.3 * std::sin(j + 1.0)), b[j] = (T)(0.1 * std::cos(j));
        // The references.
        std::vector<T> y_ref(n), dx_ref(n);
        std::vector<double> stats_ref(2 * rows), daffine_ref(2 * c, 0.0);
        for (size_t r = 0; r < rows; ++r) {
          const T* xr = &x[r * c];
          double s = 0.0, q = 0.0;
          for (unsigned j = 0; j < c; ++j) s += (double)xr[j];
          double mean = s / c;
          for (unsigned j = 0; j < c; ++j) q += ((double)xr[j] - mean) * ((double)xr[j] - mean);
          double rr = 1.0 / std::sqrt(q / c + eps);
          stats_ref[2 * r] = mean, stats_ref[2 * r + 1] = rr;
          double sg = 0.0, sgx = 0.0;
          for (unsigned j = 0; j < c; ++j) {
            double xhat = ((double)xr[j] - mean) * rr, g = (double)dy[r * c + j];
            y_ref[r * c + j] = (T)(xhat * (double)w[j] + (double)b[j]);
            sg += g * (double)w[j];
            sgx += g * (double)w[j] * xhat;
            daffine_ref[j] += g * xhat;
            daffine_ref[c + j] += g;
          }
          for (unsigned j = 0; j < c; ++j) {
            double xhat = ((double)xr[j] - mean) * rr;
            dx_ref[r * c + j] = (T)(rr * ((double)dy[r * c + j] * (double)w[j] - sg / c - xhat * sgx / c));
          }
        }
        // The kernels, launched as layer_norm.rs launches them.
        std::vector<T> y(n + pad, (T)-9), out(n + 2 * c + pad, (T)-9);
        std::vector<double> stats(2 * rows + pad, -9.0);
        size_t slices = std::min<size_t>(std::max<size_t>((rows + 127) / 128, 1), 1024);
        std::vector<double> part(2 * c * slices + pad, -9.0);
        run_rows_per_warp(rows, max_blocks, [&] { ln_fwd<T>(x.data(), w.data(), b.data(), y.data(), rows, c, eps); });
        run_rows_per_warp(rows, max_blocks, [&] { ln_stats<T>(x.data(), stats.data(), rows, c, eps); });
        run_rows_per_warp(rows, max_blocks, [&] {
          ln_grad_input<T>(x.data(), dy.data(), w.data(), stats.data(), out.data(), rows, c);
        });
        run_blocks((c + 127) / 128, slices, 128, [&] {
          ln_grad_affine_partials<T>(x.data(), dy.data(), stats.data(), part.data(), rows, c, slices);
        });
        run_blocks((2 * c + 255) / 256, 1, 256, [&] { ln_grad_affine_finish<T>(part.data(), out.data(), n, c, slices); });
        auto compare = [&](const char* what, size_t len, auto got, auto want, double t) {
          for (size_t i = 0; i < len + pad; ++i) {
            double e = i < len ? want(i) : -9.0, a = got(i);
            if (std::fabs(a - e) > t * (1.0 + std::fabs(e)) && fails++ < 8)
              printf("%s %s c %u rows %zu blocks <= %u: %zu %g != %g\n", type, what, c, rows,
                     max_blocks, i, a, e);
          }
        };
        compare("forward", n, [&](size_t i) { return (double)y[i]; }, [&](size_t i) { return (double)y_ref[i]; }, tol);
        compare("statistics", 2 * rows, [&](size_t i) { return stats[i]; }, [&](size_t i) { return stats_ref[i]; }, 1e-12);
        compare("dx, dgamma, dbeta", n + 2 * c, [&](size_t i) { return (double)out[i]; },
                [&](size_t i) { return i < n ? (double)dx_ref[i] : daffine_ref[i - n]; }, tol);
        compare("partial sums", 2 * c * slices, [&](size_t i) { return part[i]; }, [&](size_t i) {
          // Slice s of 2C: Σ dy·x̂ then Σ dy over its rows.
          size_t s = i / (2 * c), k = i % (2 * c), j = k % c, per = (rows + slices - 1) / slices;
          double acc = 0.0;
          for (size_t r = s * per; r < std::min(rows, (s + 1) * per); ++r) {
            double xhat = ((double)x[r * c + j] - stats_ref[2 * r]) * stats_ref[2 * r + 1];
            acc += k < c ? (double)dy[r * c + j] * xhat : (double)dy[r * c + j];
          }
          return acc;
        }, 1e-12);
      }
  return fails;
}

int main() {
  int cases = 0;
  int fails = check<double>("double", 1e-12, &cases) + check<float>("float", 1e-5, &cases);
  printf("host layer norm: %d cases, %d mismatches\n", cases, fails);
  return fails != 0;
}
