// A host build of heads.cu's kernels (no GPU): the queries, keys and values of a fused
// projection (B, N, 3C) split into heads (B, heads, N, C/heads), scaled, and the gradient back
// (the other two parts zero), against plain loops, for head widths of 1, 3 and 32, channel counts
// below and above the block's 32 lanes, and grids smaller than the rows. Every block of the
// launch's 32 x 8 threads is run (host_cuda.h's `launch`). Races and the launch itself need a GPU
// (check-device's qkv-heads cases). CI builds and runs it (scfnet-kernels' test `host_builds`);
// by hand, from the repository root:
//
//   g++ -std=c++17 -w tests/gpu/host_heads.cpp -o /tmp/host_heads && /tmp/host_heads
#include "host_cuda.h"
#include "../../crates/scfnet-kernels/src/cuda/heads.cu"

int main() {
  int fails = 0, cases = 0;
  struct Split { unsigned b, n, c, heads; };
  Split splits[] = {{2, 5, 6, 2}, {3, 4, 8, 8}, {1, 7, 3, 1}, {2, 9, 64, 2}, {1, 3, 96, 3}};
  for (Split s : splits) {
    unsigned hd = s.c / s.heads, rows = s.b * s.n;
    std::vector<double> qkv((size_t)rows * 3 * s.c);
    for (size_t i = 0; i < qkv.size(); ++i) qkv[i] = 1.0 + (double)((i * 7919) % 1009);
    for (unsigned part = 0; part < 3; ++part)
      for (unsigned gx : {1u, 3u}) {
        double scale = part == 0 ? 0.25 : 1.0;
        std::vector<double> heads((size_t)rows * s.c, -7.0), ref(heads.size());
        std::vector<double> back(qkv.size(), -7.0), ref_back(qkv.size(), 0.0);
        for (unsigned b = 0; b < s.b; ++b)
          for (unsigned t = 0; t < s.n; ++t)
            for (unsigned hh = 0; hh < s.heads; ++hh)
              for (unsigned d = 0; d < hd; ++d) {
                size_t src = ((size_t)b * s.n + t) * 3 * s.c + part * s.c + hh * hd + d;
                size_t dst = (((size_t)b * s.heads + hh) * s.n + t) * hd + d;
                ref[dst] = qkv[src] * scale;
                ref_back[src] = ref[dst] * scale;
              }
        run_grid_32x8(gx, [&] { qkv_heads_split(qkv.data(), heads.data(), rows, s.n, s.c, s.heads, part, scale); });
        run_grid_32x8(gx, [&] { qkv_heads_grad(heads.data(), back.data(), rows, s.n, s.c, s.heads, part, scale); });
        ++cases;
        if (heads != ref || back != ref_back) {
          ++fails;
          std::printf("FAIL b%u n%u c%u heads %u part %u grid %u\n", s.b, s.n, s.c, s.heads, part, gx);
        }
      }
  }
  std::printf("%d of %d qkv-heads cases pass\n", cases - fails, cases);
  return fails ? 1 : 0;
}
