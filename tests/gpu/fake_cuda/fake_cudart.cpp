// A fake CUDA runtime (`libcudart.so.13`) for the fake CUDA driver: the functions the CUDA build
// of scfnet references (from candle-kernels' precompiled kernels, which scfnet does not call),
// each an error named on stderr, so that a call shows instead of passing silently.
#include <cstdio>

extern "C" {
static int unsupported(const char* name) {
  std::fprintf(stderr, "fake CUDA runtime: %s is not emulated\n", name);
  return 801;  // cudaErrorNotSupported
}
#define STUB(name) int name(...) { return unsupported(#name); }
// The registration calls of nvcc-compiled objects, made at start-up and exit: nothing to do.
#define QUIET(name) void* name(...) { return nullptr; }
#include "cudart_stubs.inc"  // STUB(name) for every other cuda* symbol the binary references (build.sh)
int cudaGetLastError() { return 0; }
int cudaPeekAtLastError() { return 0; }
const char* cudaGetErrorName(int) { return "cudaErrorNotSupported"; }
const char* cudaGetErrorString(int) { return "not emulated by the fake CUDA runtime"; }
}
