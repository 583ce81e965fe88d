// A host build of im2col.cu's per-thread bodies (no GPU): the batch-wide columns (`images` > 0)
// are the per-image columns side by side (every element written, five geometries); `col2im` of
// either layout equals a plain scatter of the columns back onto the image; and with a 1×1
// window the batch-wide layout transposes (B, Co, P) to (Co, B·P) and back, as the columns
// convolution's batch products (columns_conv.rs) use it. Races and the launch itself need a GPU
// (check-device's `[batch-columns]` cases). CI builds and runs it (scfnet-kernels' test
// `host_builds`); by hand, from the repository root:
//
//   g++ -std=c++17 -w tests/gpu/host_im2col.cpp -o /tmp/host_im2col && /tmp/host_im2col
//
// One thread walks every index (grid and block of one).
#include "host_cuda.h"
#include "../../crates/scfnet-kernels/src/cuda/im2col.cu"
int main() {
  int fails = 0;
  struct G { unsigned k, s, p, d; } gs[] = {{3,1,1,1},{3,2,2,2},{1,2,0,1},{1,1,0,1},{7,2,3,1},{3,1,2,2},{2,2,0,1},{5,1,2,1},{3,2,1,1},{3,3,4,3}};
  unsigned B = 3, C = 2, H = 9, W = 7;
  std::vector<double> x(B*C*H*W);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin((double)i) + 2.0;
  for (auto g : gs) {
    unsigned oh = (H + 2*g.p - g.d*(g.k-1) - 1)/g.s + 1, ow = (W + 2*g.p - g.d*(g.k-1) - 1)/g.s + 1;
    size_t P = oh*ow, kk = g.k*g.k, rows = C*kk, n = B*rows*P;
    std::vector<double> narrow(n, -1), wide(n, -1);
    im2col<double>(x.data(), narrow.data(), B*C, 0, H, W, oh, ow, g.k, g.s, g.p, g.d);
    im2col<double>(x.data(), wide.data(), B*C, B, H, W, oh, ow, g.k, g.s, g.p, g.d);
    size_t nonzero = 0;
    for (size_t r = 0; r < rows; ++r) for (size_t b = 0; b < B; ++b) for (size_t q = 0; q < P; ++q) {
      // What tap t = r % kk of channel r / kk sees at output q: the image, or zero outside it.
      size_t c = r / kk, t = r % kk;
      int iy = (int)((q / ow)*g.s + (t / g.k)*g.d) - (int)g.p, ix = (int)((q % ow)*g.s + (t % g.k)*g.d) - (int)g.p;
      double seen = iy >= 0 && iy < (int)H && ix >= 0 && ix < (int)W ? x[((b*C + c)*H + iy)*W + ix] : 0.0;
      double a = wide[(r*B + b)*P + q], e = narrow[(b*rows + r)*P + q];
      if (a != e || e != seen) { if (fails++ < 5) printf("k%u: r%zu b%zu q%zu %g, %g != %g\n", g.k, r, b, q, a, e, seen); }
      nonzero += e != 0;
    }
    // The way back: a scatter of the per-image columns, tap by tap (the kernels' order).
    std::vector<double> cols(n), expect(B*C*H*W, 0.0), back(B*C*H*W, -1), back_wide(B*C*H*W, -1);
    for (size_t i = 0; i < n; ++i) cols[i] = std::cos((double)i);
    std::vector<double> cols_wide(n);
    for (size_t r = 0; r < rows; ++r) for (size_t b = 0; b < B; ++b) for (size_t q = 0; q < P; ++q)
      cols_wide[(r*B + b)*P + q] = cols[(b*rows + r)*P + q];
    for (size_t pl = 0; pl < B*C; ++pl) for (size_t t = 0; t < kk; ++t) for (size_t q = 0; q < P; ++q) {
      int iy = (int)((q / ow)*g.s + (t / g.k)*g.d) - (int)g.p, ix = (int)((q % ow)*g.s + (t % g.k)*g.d) - (int)g.p;
      if (iy >= 0 && iy < (int)H && ix >= 0 && ix < (int)W) expect[pl*H*W + iy*W + ix] += cols[(pl*kk + t)*P + q];
    }
    col2im<double>(cols.data(), back.data(), B*C, 0, H, W, oh, ow, g.k, g.s, g.p, g.d);
    col2im<double>(cols_wide.data(), back_wide.data(), B*C, B, H, W, oh, ow, g.k, g.s, g.p, g.d);
    for (size_t i = 0; i < expect.size(); ++i)
      if (back[i] != expect[i] || back_wide[i] != expect[i]) {
        if (fails++ < 5) printf("col2im k%u: %zu %g %g != %g\n", g.k, i, back[i], back_wide[i], expect[i]);
      }
    printf("k=%u s=%u p=%u d=%u: %zu elements, %zu nonzero\n", g.k, g.s, g.p, g.d, n, nonzero);
  }
  // dY (B, Co, P) -> (Co, B*P) as a 1x1 window over (B, Co, 1, P), and back: (Co, B*P) seen
  // as Co images of B channels -> (B, Co*P).
  unsigned Co = 5, P = 11;
  std::vector<double> dy(B*Co*P), t(B*Co*P, -1), u(B*Co*P, -1);
  for (size_t i = 0; i < dy.size(); ++i) dy[i] = i + 1;
  im2col<double>(dy.data(), t.data(), B*Co, B, 1, P, 1, P, 1, 1, 0, 1);
  for (size_t c = 0; c < Co; ++c) for (size_t b = 0; b < B; ++b) for (size_t q = 0; q < P; ++q)
    if (t[(c*B + b)*P + q] != dy[(b*Co + c)*P + q]) fails++;
  im2col<double>(t.data(), u.data(), Co*B, Co, 1, P, 1, P, 1, 1, 0, 1);
  if (u != dy) fails++;
  printf("transposes checked; failures: %d\n", fails);
  return fails != 0;
}
