// A host build of sgd.cu's kernel (no GPU): the SGD-with-momentum update of a chunk of
// parameters of different lengths (1 to 3,000 values, with and without weight decay, different
// momenta and steps), against two plain passes per parameter (velocity, then weight: the CPU
// kernels' order), for grids narrower than the longest parameter (the grid-stride loop) and as
// wide. Every thread of the launch is run (host_cuda.h's `launch`); unused chunk entries stay
// untouched.
// The launch itself needs a GPU (check-device's sgd case). CI builds and runs it (scfnet-kernels'
// test `host_builds`); by hand, from the repository root:
//
//   g++ -std=c++17 -w tests/gpu/host_sgd.cpp -o /tmp/host_sgd && /tmp/host_sgd
#include "host_cuda.h"
#include "../../crates/scfnet-kernels/src/cuda/sgd.cu"

template <typename T>
static int check(unsigned gx) {
  const size_t lengths[] = {1, 7, 256, 257, 1000, 3000};
  const unsigned count = sizeof(lengths) / sizeof(lengths[0]);
  std::vector<std::vector<T>> w(count), v(count), g(count), rw(count), rv(count);
  SgdChunk<T> c{};
  for (unsigned p = 0; p < count; ++p) {
    size_t n = lengths[p];
    for (size_t i = 0; i < n; ++i) {
      w[p].push_back((T)(0.001 * (double)((i * 7919 + p) % 2003) - 1.0));
      v[p].push_back((T)(0.0007 * (double)((i * 104729 + 3 * p) % 1999) - 0.7));
      g[p].push_back((T)(0.0013 * (double)((i * 31 + 11 * p) % 997) - 0.6));
    }
    rw[p] = w[p];
    rv[p] = v[p];
    c.w[p] = w[p].data();
    c.v[p] = v[p].data();
    c.g[p] = g[p].data();
    c.n[p] = n;
    c.momentum[p] = 0.9 - 0.05 * p;
    c.decay[p] = p % 2 ? 0.0 : 5e-4 * (p + 1);
    c.step[p] = 0.01 / (p + 1);
    T m = (T)c.momentum[p], d = (T)c.decay[p], s = (T)c.step[p];
    for (size_t i = 0; i < n; ++i) {
      T gi = g[p][i];
      if (c.decay[p] != 0.0) gi = gi + (rw[p][i] * d + (T)0);
      rv[p][i] = (rv[p][i] * m + (T)0) + gi;
    }
    for (size_t i = 0; i < n; ++i) rw[p][i] = rw[p][i] - (rv[p][i] * s + (T)0);
  }
  launch({gx, count, 1}, {256, 1, 1}, [&] { sgd_chunk<T>(c); });
  int fails = 0;
  for (unsigned p = 0; p < count; ++p)
    if (w[p] != rw[p] || v[p] != rv[p]) {
      ++fails;
      std::printf("FAIL %zu-byte values, grid %u, parameter %u (%zu values)\n", sizeof(T), gx, p,
                  lengths[p]);
    }
  return fails;
}

int main() {
  int fails = 0, cases = 0;
  for (unsigned gx : {1u, 3u, 12u}) {
    fails += check<float>(gx) + check<double>(gx);
    cases += 2;
  }
  std::printf("host sgd: %d cases, %d failures\n", cases, fails);
  return fails ? 1 : 0;
}
