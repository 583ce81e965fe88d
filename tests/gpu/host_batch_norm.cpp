// A host build of batch_norm.cu's per-thread bodies (no GPU), against plain references with the
// CPU kernel's formulas (batch_norm.rs): the batch statistics (after γ and β in one (4, C)
// parameter tensor), the per-channel coefficients and
// the normalisation with each activation (ReLU, hard-swish, none), without and with a residual
// added before the activation — bit for bit, the same
// expressions in the same order —, and the backward (dx, dγ, dβ; sums in another order than the
// reference, so within 1e-12 in double, 1e-5 in float; zeros in the statistics' rows). The block reductions are common.cuh's
// own (`block_sum`: warp shuffles, shared memory, barriers), run lane against lane by
// host_cuda.h's emulation, with block widths of one, three and eight warps and 1–3 batch
// slices. The GPU's arithmetic, the launch itself and races the emulation's two orders of
// warps do not expose need a GPU (check-device's BatchNorm cases).
// CI builds and runs it (scfnet-kernels' test
// `host_builds`); by hand, from the repository root:
//
//   g++ -std=c++17 -w tests/gpu/host_batch_norm.cpp -o /tmp/host_bn && /tmp/host_bn
#include "host_cuda.h"
#include "../../crates/scfnet-kernels/src/cuda/batch_norm.cu"

// The activations and the derivatives the CPU kernel uses (activation.rs), in T.
template <typename T>
static T act_ref(int act, T v) {
  if (act == 1) return v > (T)0 ? v : (T)0;
  if (act == 2) return v * std::min(std::max(v + (T)3, (T)0), (T)6) / (T)6;
  return v;
}
template <typename T>
static T act_slope(int act, T v) {
  if (act == 1) return v >= (T)0 ? (T)1 : (T)0;
  if (act == 2) return v < (T)-3 ? (T)0 : (v <= (T)3 ? v / (T)3 + (T)0.5 : (T)1);
  return (T)1;
}

template <typename T>
static int check(const char* type, double tol) {
  int fails = 0, cases = 0;
  const size_t B = 3, C = 4;
  double eps = 1e-5;
  for (unsigned hw : {7u, 64u, 300u})
    for (int act = 0; act < 3; ++act)
      for (unsigned width : {32u, 96u, 256u})
        for (size_t splits = 1; splits <= 3; ++splits) {
          ++cases;
          size_t n = B * C * hw;
          std::vector<T> x(n), dy(n), affine(2 * C);
          for (size_t i = 0; i < n; ++i) x[i] = (T)(std::sin(0.3 * i) * 2 + 0.5 * (i % 3));
          for (size_t i = 0; i < n; ++i) dy[i] = (T)std::cos(0.7 * i);
          for (size_t i = 0; i < 2 * C; ++i) affine[i] = (T)(1.0 + 0.25 * std::sin(i + 1.0));
          // Statistics, written after γ and β: params = [γ; β; mean; var].
          std::vector<double> part(2 * C * splits, -9);
          std::vector<T> params(4 * C, -9);
          run_blocks(splits, C, width, [&] { bn_stat_partials<T>(x.data(), part.data(), B, C, hw, splits); });
          bn_stat_finish<T>(x.data(), part.data(), affine.data(), affine.data() + C, params.data(), B, C, hw, splits);
          const T* stats = params.data() + 2 * C;
          for (size_t i = 0; i < 2 * C; ++i)
            if (params[i] != affine[i] && fails++ < 8) printf("%s params row %zu: %g != γ/β %g\n", type, i / C, (double)params[i], (double)affine[i]);
          for (size_t ch = 0; ch < C; ++ch) {
            double s = 0, q = 0;
            for (size_t b = 0; b < B; ++b)
              for (size_t j = 0; j < hw; ++j) s += (double)x[(b * C + ch) * hw + j];
            double mean = s / (B * hw);
            for (size_t b = 0; b < B; ++b)
              for (size_t j = 0; j < hw; ++j) {
                double d = (double)x[(b * C + ch) * hw + j] - mean;
                q += d * d;
              }
            double var = q / (B * hw);
            if (std::fabs((double)stats[ch] - mean) > tol * (1 + std::fabs(mean)) ||
                std::fabs((double)stats[C + ch] - var) > tol * (1 + var)) {
              if (fails++ < 8) printf("%s stats hw %u ch %zu: %g %g != %g %g\n", type, hw, ch, (double)stats[ch], (double)stats[C + ch], mean, var);
            }
          }
          // Normalisation (the CPU kernel's rounding: scale and shift rounded to T).
          std::vector<T> coef(2 * C, -9), y(n, -9);
          bn_coefficients<T>(affine.data(), stats, coef.data(), eps, C);
          std::vector<T> r(n), yr(n, -9);
          for (size_t i = 0; i < n; ++i) r[i] = (T)std::sin(1.1 * i + 0.2);
          bn_apply<T>(x.data(), coef.data(), nullptr, y.data(), B * C, C, hw, act);
          bn_apply<T>(x.data(), coef.data(), r.data(), yr.data(), B * C, C, hw, act);
          for (size_t i = 0; i < n; ++i) {
            size_t ch = i / hw % C;
            double g = (double)affine[ch], bt = (double)affine[C + ch];
            double inv = 1.0 / std::sqrt((double)stats[C + ch] + eps);
            T scale = (T)(g * inv), shift = (T)(bt - (double)stats[ch] * g * inv);
            T e = act_ref<T>(act, x[i] * scale + shift);
            T er = act_ref<T>(act, (T)(x[i] * scale + shift) + r[i]);
            if (y[i] != e && fails++ < 8) printf("%s apply act %d: %zu %g != %g\n", type, act, i, (double)y[i], (double)e);
            if (yr[i] != er && fails++ < 8) printf("%s apply + residual act %d: %zu %g != %g\n", type, act, i, (double)yr[i], (double)er);
          }
          // Backward, from the params written above: dx, then the gradient of params, (4, C).
          std::vector<double> gpart(2 * C * splits, -9), gcoef(7 * C, -9);
          std::vector<T> out(n + 4 * C, -9);
          run_blocks(splits, C, width, [&] {
            bn_grad_partials<T>(x.data(), dy.data(), params.data(), gpart.data(), eps, B, C, hw, splits, act);
          });
          bn_grad_finish<T>(gpart.data(), params.data(), gcoef.data(), out.data(), eps, n, C, splits);
          bn_grad_input<T>(x.data(), dy.data(), gcoef.data(), out.data(), B * C, C, hw, act);
          for (size_t ch = 0; ch < C; ++ch) {
            double mean = (double)stats[ch], inv = 1.0 / std::sqrt((double)stats[C + ch] + eps);
            double gamma = (double)affine[ch], beta = (double)affine[C + ch];
            T scale = (T)(gamma * inv), shift = (T)(beta - mean * gamma * inv);
            double sd = 0, sdx = 0;
            std::vector<double> g(B * hw);
            for (size_t b = 0; b < B; ++b)
              for (size_t j = 0; j < hw; ++j) {
                size_t i = (b * C + ch) * hw + j;
                g[b * hw + j] = (double)(dy[i] * act_slope<T>(act, x[i] * scale + shift));
                sd += g[b * hw + j];
                sdx += g[b * hw + j] * ((double)x[i] - mean) * inv;
              }
            double nn = (double)(B * hw);
            auto bad = [&](double a, double e) { return std::fabs(a - e) > tol * (1 + std::fabs(e)); };
            if ((bad((double)out[n + ch], sdx) || bad((double)out[n + C + ch], sd)) && fails++ < 8)
              printf("%s dgamma/dbeta act %d ch %zu: %g %g != %g %g\n", type, act, ch, (double)out[n + ch], (double)out[n + C + ch], sdx, sd);
            if ((out[n + 2 * C + ch] != (T)0 || out[n + 3 * C + ch] != (T)0) && fails++ < 8)
              printf("%s the statistics' gradient rows ch %zu: %g %g, not 0\n", type, ch, (double)out[n + 2 * C + ch], (double)out[n + 3 * C + ch]);
            for (size_t b = 0; b < B; ++b)
              for (size_t j = 0; j < hw; ++j) {
                size_t i = (b * C + ch) * hw + j;
                double xhat = ((double)x[i] - mean) * inv;
                double e = gamma * inv * (g[b * hw + j] - sd / nn - xhat * sdx / nn);
                if (bad((double)out[i], e) && fails++ < 8)
                  printf("%s dx act %d hw %u width %u splits %zu: %zu %g != %g\n", type, act, hw, width, splits, i, (double)out[i], e);
              }
          }
        }
  printf("%s: %d cases, %d mismatches\n", type, cases, fails);
  return fails;
}

// The running statistics' update, bit for bit the composition (r*keep + 0) + (b*weight + 0),
// over a grid smaller than the channels (the index loop wraps).
template <typename T>
static int check_running(const char* type) {
  int fails = 0;
  const size_t n = 300;
  std::vector<T> r(n), b(n), want(n);
  for (size_t i = 0; i < n; ++i) {
    r[i] = (T)(0.37 * (double)i - 20.0);
    b[i] = (T)(1.0 + 0.011 * (double)((i * 7919) % 1009));
    want[i] = (r[i] * (T)0.9 + (T)0) + (b[i] * (T)(0.1 * 640.0 / 639.0) + (T)0);
  }
  run_blocks(2, 1, 64, [&] { bn_running_update<T>(r.data(), b.data(), n, 0.9, 0.1 * 640.0 / 639.0); });
  for (size_t i = 0; i < n; ++i)
    if (r[i] != want[i] && fails++ < 8) printf("%s running %zu: %g != %g\n", type, i, (double)r[i], (double)want[i]);
  printf("%s: running statistics, %d mismatches\n", type, fails);
  return fails;
}

int main() {
  int fails = check<double>("double", 1e-12) + check<float>("float", 1e-5);
  fails += check_running<double>("double") + check_running<float>("float");
  return fails != 0;
}
