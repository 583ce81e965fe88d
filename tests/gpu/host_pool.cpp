// A host build of pool.cu's per-thread bodies (no GPU): the forward and the gradient of the
// max-pool against a plain reference with the CPU kernel's rules (the first maximum of the
// window in row-major order, a NaN wins, -inf padding), on values with ties and a plane holding
// NaNs, for the networks' windows (the ResNet stem's 3x3/2) and the boundary loss's separable
// same-size windows (1xk and kx1, stride 1). Races and the launch itself need a GPU
// (check-device's max-pool cases). CI builds and runs it (scfnet-kernels' test
// `host_builds`); by hand, from the repository root:
//
//   g++ -std=c++17 -w tests/gpu/host_pool.cpp -o /tmp/host_pool && /tmp/host_pool
//
// One thread walks every index (grid and block of one).
#include "host_cuda.h"
#include "../../crates/scfnet-kernels/src/cuda/pool.cu"

struct Window { unsigned kh, kw, sh, sw, ph, pw; };

// The flat index of output (oy, ox)'s first maximum in a plane, as the CPU kernel finds it.
static size_t reference_argmax(const double* plane, unsigned h, unsigned w, unsigned oy, unsigned ox,
                               Window g) {
  long y0 = (long)(oy * g.sh) - g.ph, x0 = (long)(ox * g.sw) - g.pw;
  long y1 = std::min(y0 + (long)g.kh, (long)h), x1 = std::min(x0 + (long)g.kw, (long)w);
  size_t best = 0;
  double best_v = -INFINITY;
  bool first = true;
  for (long y = std::max(y0, 0L); y < y1; ++y)
    for (long x = std::max(x0, 0L); x < x1; ++x) {
      double v = plane[y * w + x];
      if (first || v > best_v || std::isnan(v)) {
        best = y * w + x;
        best_v = v;
        first = false;
        if (std::isnan(v)) return best;
      }
    }
  return best;
}

int main() {
  int fails = 0, cases = 0;
  Window ws[] = {{3, 3, 2, 2, 1, 1}, {2, 2, 2, 2, 0, 0}, {3, 2, 1, 2, 1, 0}, {1, 5, 1, 1, 0, 2},
                 {5, 1, 1, 1, 2, 0}, {1, 13, 1, 1, 0, 6}, {13, 1, 1, 1, 6, 0}, {1, 3, 1, 1, 0, 1},
                 {3, 1, 1, 1, 1, 0}, {1, 1, 1, 1, 0, 0}};
  unsigned sizes[][2] = {{9, 7}, {16, 16}, {13, 20}};
  for (auto hw : sizes) {
    unsigned planes = 3, h = hw[0], w = hw[1];
    std::vector<double> x(planes * h * w);
    // A grid of 0.5 (ties in every window); plane 2 holds two NaNs.
    for (size_t i = 0; i < x.size(); ++i) x[i] = 0.5 * (double)((i * 7919) % 5);
    x[2 * h * w + 5] = NAN;
    x[2 * h * w + h * w - 3] = NAN;
    for (auto g : ws) {
      if (h + 2 * g.ph < g.kh || w + 2 * g.pw < g.kw) continue;
      ++cases;
      unsigned oh = (h + 2 * g.ph - g.kh) / g.sh + 1, ow = (w + 2 * g.pw - g.kw) / g.sw + 1;
      std::vector<double> y(planes * oh * ow, -7), grad(planes * oh * ow), dx(x.size(), 0.0),
          expect_dx(x.size(), 0.0);
      for (size_t i = 0; i < grad.size(); ++i) grad[i] = std::cos((double)i);
      max_pool_fwd<double>(x.data(), y.data(), planes, h, w, oh, ow, g.kh, g.kw, g.sh, g.sw, g.ph,
                           g.pw);
      max_pool_bwd<double>(x.data(), grad.data(), dx.data(), planes, h, w, oh, ow, g.kh, g.kw, g.sh,
                           g.sw, g.ph, g.pw);
      for (unsigned p = 0; p < planes; ++p)
        for (unsigned oy = 0; oy < oh; ++oy)
          for (unsigned ox = 0; ox < ow; ++ox) {
            size_t at = reference_argmax(x.data() + p * h * w, h, w, oy, ox, g);
            size_t o = (p * oh + oy) * ow + ox;
            double e = x[p * h * w + at], a = y[o];
            expect_dx[p * h * w + at] += grad[o];
            bool same = (std::isnan(e) && std::isnan(a)) || e == a;
            if (!same && fails++ < 8)
              printf("fwd %ux%u k%ux%u/%ux%u p%ux%u: plane %u (%u, %u) %g != %g\n", h, w, g.kh,
                     g.kw, g.sh, g.sw, g.ph, g.pw, p, oy, ox, a, e);
          }
      for (size_t i = 0; i < x.size(); ++i)
        if (std::fabs(dx[i] - expect_dx[i]) > 1e-12 && fails++ < 8)
          printf("bwd %ux%u k%ux%u/%ux%u p%ux%u: %zu %g != %g\n", h, w, g.kh, g.kw, g.sh, g.sw,
                 g.ph, g.pw, i, dx[i], expect_dx[i]);
    }
  }
  printf("%d cases, %d mismatches\n", cases, fails);
  return fails != 0;
}
