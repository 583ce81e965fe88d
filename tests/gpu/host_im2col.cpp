// A host build of im2col.cu's per-thread bodies (no GPU): the batch-wide columns of
// `im2col_wide` are the per-image columns of `im2col` side by side (every element written, five
// geometries), and `im2col_wide` with a 1×1 window transposes (B, Co, P) to (Co, B·P), as
// the weight gradient's one product (columns_conv.rs) uses it. Races and the launch itself need
// a GPU (check-device's `[batch-wgrad]` cases). Run by hand from the repository root:
//
//   g++ -std=c++17 -w tests/gpu/host_im2col.cpp -o /tmp/host_im2col && /tmp/host_im2col
//
// One thread walks every index (grid and block of one).
#include <cstdio>
#include <cstddef>
#include <vector>
#include <cmath>
#include <algorithm>
using std::min;
#define __device__
#define __global__
#define __host__
#define __shared__ static
struct D3 { unsigned x, y, z; };
static D3 blockIdx{0,0,0}, threadIdx{0,0,0}, blockDim{1,1,1}, gridDim{1,1,1};
static inline void __syncthreads() {}
template <class T> T __shfl_down_sync(unsigned, T v, int) { return v; }
template <class T> T __shfl_xor_sync(unsigned, T v, int) { return v; }
#include "../../crates/scfnet-kernels/src/cuda/im2col.cu"
int main() {
  int fails = 0;
  struct G { unsigned k, s, p, d; } gs[] = {{3,1,1,1},{3,2,2,2},{1,2,0,1},{1,1,0,1},{7,2,3,1}};
  unsigned B = 3, C = 2, H = 9, W = 7;
  std::vector<double> x(B*C*H*W);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin((double)i) + 2.0;
  for (auto g : gs) {
    unsigned oh = (H + 2*g.p - g.d*(g.k-1) - 1)/g.s + 1, ow = (W + 2*g.p - g.d*(g.k-1) - 1)/g.s + 1;
    size_t P = oh*ow, rows = C*g.k*g.k, n = B*rows*P;
    std::vector<double> narrow(n, -1), wide(n, -1);
    im2col<double>(x.data(), narrow.data(), B*C, H, W, oh, ow, g.k, g.s, g.p, g.d);
    im2col_wide<double>(x.data(), wide.data(), B*C, B, H, W, oh, ow, g.k, g.s, g.p, g.d);
    size_t nonzero = 0;
    for (size_t r = 0; r < rows; ++r) for (size_t b = 0; b < B; ++b) for (size_t q = 0; q < P; ++q) {
      double a = wide[(r*B + b)*P + q], e = narrow[(b*rows + r)*P + q];
      if (a != e || e == -1) { if (fails++ < 5) printf("k%u: r%zu b%zu q%zu %g != %g\n", g.k, r, b, q, a, e); }
      nonzero += e != 0;
    }
    printf("k=%u s=%u p=%u d=%u: %zu elements, %zu nonzero\n", g.k, g.s, g.p, g.d, n, nonzero);
  }
  // dY (B, Co, P) -> (Co, B*P) as a 1x1 window over (B, Co, 1, P).
  unsigned Co = 5, P = 11;
  std::vector<double> dy(B*Co*P), t(B*Co*P, -1);
  for (size_t i = 0; i < dy.size(); ++i) dy[i] = i + 1;
  im2col_wide<double>(dy.data(), t.data(), B*Co, B, 1, P, 1, P, 1, 1, 0, 1);
  for (size_t c = 0; c < Co; ++c) for (size_t b = 0; b < B; ++b) for (size_t q = 0; q < P; ++q)
    if (t[(c*B + b)*P + q] != dy[(b*Co + c)*P + q]) fails++;
  printf("transpose checked; failures: %d\n", fails);
  return fails != 0;
}
