// A host build of windows.cu's kernels (no GPU): Swin's window partition and merge against a
// plain reference (roll by (-sh, -sw), zero padding to multiples of ws, cut into windows, in
// that order, as the composed path does), over exact and padded maps, shifts on none, one or
// both axes, windows larger than the map, and channel counts below, at and above the block's
// 32 lanes. Every block of the launch's 32 x 8 threads is run (host_cuda.h's `launch`), with a
// grid smaller than the rows (so the row loop wraps). Races and the launch itself need a GPU
// (check-device's window cases). CI builds and runs it (scfnet-kernels' test `host_builds`);
// by hand, from the repository root:
//
//   g++ -std=c++17 -w tests/gpu/host_windows.cpp -o /tmp/host_windows && /tmp/host_windows
#include "host_cuda.h"
#include "../../crates/scfnet-kernels/src/cuda/windows.cu"

int main() {
  int fails = 0, cases = 0;
  struct Cut { unsigned b, h, w, c, ws, sh, sw; };
  Cut cuts[] = {{2, 4, 6, 3, 2, 0, 0},   {2, 4, 6, 3, 2, 1, 1},  {1, 5, 7, 2, 3, 1, 2},
                {2, 6, 5, 33, 3, 2, 0},  {1, 3, 4, 5, 6, 0, 3},  {3, 7, 7, 1, 4, 2, 2},
                {1, 12, 12, 70, 12, 6, 6}, {2, 9, 9, 32, 3, 0, 1}};
  for (Cut k : cuts) {
    unsigned ny = (k.h + k.ws - 1) / k.ws, nx = (k.w + k.ws - 1) / k.ws;
    unsigned hp = ny * k.ws, wp = nx * k.ws;
    size_t map_rows = (size_t)k.b * k.h * k.w, win_rows = (size_t)k.b * hp * wp;
    std::vector<double> x(map_rows * k.c);
    for (size_t i = 0; i < x.size(); ++i) x[i] = 1.0 + (double)((i * 7919) % 1009);
    // Reference: rolled, padded, cut.
    std::vector<double> ref(win_rows * k.c, 0.0);
    for (unsigned b = 0; b < k.b; ++b)
      for (unsigned py = 0; py < hp; ++py)
        for (unsigned px = 0; px < wp; ++px) {
          size_t win = ((size_t)b * ny + py / k.ws) * nx + px / k.ws;
          size_t row = win * k.ws * k.ws + (py % k.ws) * k.ws + px % k.ws;
          if (py >= k.h || px >= k.w) continue;
          size_t src = ((size_t)b * k.h + (py + k.sh) % k.h) * k.w + (px + k.sw) % k.w;
          for (unsigned ch = 0; ch < k.c; ++ch) ref[row * k.c + ch] = x[src * k.c + ch];
        }
    for (unsigned gx : {1u, 2u, 5u}) {
      std::vector<double> y(win_rows * k.c, -7.0), back(map_rows * k.c, -7.0);
      run_grid_32x8(gx, [&] {
        window_partition(x.data(), y.data(), (unsigned)win_rows, k.c, k.h, k.w, k.ws, k.sh, k.sw,
                         ny, nx);
      });
      run_grid_32x8(gx, [&] {
        window_merge(y.data(), back.data(), (unsigned)map_rows, k.c, k.h, k.w, k.ws, k.sh, k.sw,
                     ny, nx);
      });
      ++cases;
      bool ok = y == ref && back == x;
      if (!ok) {
        ++fails;
        std::printf("FAIL b%u %ux%u c%u ws%u shift (%u, %u) grid %u\n", k.b, k.h, k.w, k.c, k.ws,
                    k.sh, k.sw, gx);
      }
    }
  }
  std::printf("%d of %d window cases pass\n", cases - fails, cases);
  return fails ? 1 : 0;
}
