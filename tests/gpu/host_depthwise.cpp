// A host build of depthwise.cu's per-thread bodies (no GPU), against plain references: the
// forward pass and the input gradient (one thread walks every index; the any-size code and the
// code compiled for 3×3 and 5×5 filters), and the weight gradient's
// partial sums, launched as blocks whose threads host_cuda.h runs lane against lane through
// common.cuh's own block reduction (shuffles, shared memory, barriers): block widths of one and
// three warps (narrower and wider than an output row, which the kernel's stepping through its
// outputs must handle), kernel sizes 1 to 9 (9: two chunks of taps), strides 1 and 2, batch
// slices 1 to 3. The GPU's arithmetic, the launch itself and races the emulation's two orders
// of warps do not expose need a GPU (check-device's depthwise cases). CI builds and runs it
// (scfnet-kernels' test
// `host_builds`); by hand, from the repository root:
//
//   g++ -std=c++17 -w tests/gpu/host_depthwise.cpp -o /tmp/host_depthwise && /tmp/host_depthwise
#include "host_cuda.h"
#include "../../crates/scfnet-kernels/src/cuda/depthwise.cu"

int main() {
  int fails = 0, cases = 0;
  struct G { unsigned k, s, p; } gs[] = {{3, 1, 1}, {3, 2, 1}, {5, 1, 2}, {5, 2, 2}, {1, 1, 0},
                                         {7, 1, 3}, {9, 2, 4}, {3, 1, 0}, {2, 2, 0}};
  unsigned sizes[][2] = {{9, 7}, {16, 5}, {4, 11}, {3, 70}};
  unsigned widths[] = {32, 96};
  const unsigned B = 5, C = 3;
  for (auto hw : sizes)
    for (auto g : gs) {
      unsigned h = hw[0], w = hw[1];
      if (h + 2 * g.p < g.k || w + 2 * g.p < g.k) continue;
      unsigned oh = (h + 2 * g.p - g.k) / g.s + 1, ow = (w + 2 * g.p - g.k) / g.s + 1;
      unsigned kk = g.k * g.k;
      std::vector<double> x(B * C * h * w), wt(C * kk), go(B * C * oh * ow);
      for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.7 * i) + 0.25;
      for (size_t i = 0; i < wt.size(); ++i) wt[i] = std::cos(1.3 * i);
      for (size_t i = 0; i < go.size(); ++i) go[i] = std::cos(0.37 * i) - 0.1;
      // References: each tap's contributions, summed in plain loops.
      std::vector<double> y_ref(go.size(), 0.0), dx_ref(x.size(), 0.0), dw_ref(C * kk, 0.0);
      std::vector<std::vector<double>> dw_per_image(B, std::vector<double>(C * kk, 0.0));
      for (unsigned b = 0; b < B; ++b)
        for (unsigned c = 0; c < C; ++c)
          for (unsigned oy = 0; oy < oh; ++oy)
            for (unsigned ox = 0; ox < ow; ++ox)
              for (unsigned ky = 0; ky < g.k; ++ky)
                for (unsigned kx = 0; kx < g.k; ++kx) {
                  int iy = (int)(oy * g.s + ky) - (int)g.p, ix = (int)(ox * g.s + kx) - (int)g.p;
                  if (iy < 0 || iy >= (int)h || ix < 0 || ix >= (int)w) continue;
                  size_t xi = ((size_t)(b * C + c) * h + iy) * w + ix;
                  size_t oi = ((size_t)(b * C + c) * oh + oy) * ow + ox;
                  y_ref[oi] += wt[c * kk + ky * g.k + kx] * x[xi];
                  dx_ref[xi] += wt[c * kk + ky * g.k + kx] * go[oi];
                  dw_per_image[b][c * kk + ky * g.k + kx] += go[oi] * x[xi];
                }
      auto close = [](double a, double e) { return std::fabs(a - e) <= 1e-12 * (1.0 + std::fabs(e)); };
      // The forward pass and the input gradient: the any-size code, and the one compiled for
      // the filter's size where there is one (K = 3, 5).
      auto check = [&](const char* what, unsigned compiled, const std::vector<double>& a,
                       const std::vector<double>& e) {
        for (size_t i = 0; i < a.size(); ++i)
          if (!close(a[i], e[i]) && fails++ < 8)
            printf("%s (K = %u) %ux%u k%u s%u p%u: %zu %g != %g\n", what, compiled, h, w, g.k, g.s,
                   g.p, i, a[i], e[i]);
      };
      auto run = [&](auto fwd, auto grad_input, unsigned compiled) {
        ++cases;
        std::vector<double> y(go.size(), -9), dx(x.size(), -9);
        fwd(x.data(), wt.data(), y.data(), B * C, C, h, w, oh, ow, g.k, g.s, g.p);
        grad_input(go.data(), wt.data(), dx.data(), B * C, C, h, w, oh, ow, g.k, g.s, g.p);
        check("fwd", compiled, y, y_ref);
        check("grad-input", compiled, dx, dx_ref);
      };
      run(dw_fwd<double, 0>, dw_grad_input<double, 0>, 0);
      if (g.k == 3) run(dw_fwd<double, 3>, dw_grad_input<double, 3>, 3);
      if (g.k == 5) run(dw_fwd<double, 5>, dw_grad_input<double, 5>, 5);
      // The weight gradient: every block width and number of slices.
      unsigned chunks = (g.k + DW_TAPS - 1) / DW_TAPS;
      for (unsigned width : widths)
        for (size_t splits = 1; splits <= 3; ++splits) {
          ++cases;
          std::vector<double> part(C * kk * splits, -9), dw(C * kk, -9);
          run_blocks(splits, C * g.k * chunks, width, [&] {
            dw_grad_weight_partials<double>(x.data(), go.data(), part.data(), B, C, h, w, oh, ow,
                                            g.k, g.s, g.p, splits);
          });
          dw_grad_weight_finish<double>(part.data(), dw.data(), C * kk, splits);
          for (size_t r = 0; r < C * kk; ++r) {
            double e = 0.0;
            for (unsigned b = 0; b < B; ++b) e += dw_per_image[b][r];
            if (!close(dw[r], e) && fails++ < 8)
              printf("grad-weight %ux%u k%u s%u p%u width %u splits %zu: weight %zu %g != %g\n", h,
                     w, g.k, g.s, g.p, width, splits, r, dw[r], e);
          }
        }
    }
  printf("%d cases, %d mismatches\n", cases, fails);
  return fails != 0;
}
