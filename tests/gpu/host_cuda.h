// What the host builds of the kernels (tests/gpu/host_*.cpp) share: the CUDA keywords defined
// away, one-thread stand-ins for the intrinsics, scfnet-kernels' common.cuh, an emulated
// block sum with `run_blocks`, which runs each block's threads one after the other, and
// `run_grid_32x8` for the row-gather kernels. Include it,
// then the kernel's .cu file. Not compiled on its own.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <functional>
#include <vector>
using std::max;
using std::min;
#define __device__
#define __global__
#define __host__
#define __shared__ static
struct D3 { unsigned x, y, z; };
static D3 blockIdx{0, 0, 0}, threadIdx{0, 0, 0}, blockDim{1, 1, 1}, gridDim{1, 1, 1};
static inline void __syncthreads() {}
// A lane with no partner contributes nothing (the reductions below are emulated anyway).
template <class T> T __shfl_down_sync(unsigned, T, int) { return 0; }
template <class T> T __shfl_xor_sync(unsigned, T, int) { return 0; }
template <class T> T atomicAdd(T* at, T v) { T old = *at; *at += v; return old; }
#include "../../crates/scfnet-kernels/src/cuda/common.cuh"

// The block reduction, emulated over threads run one after the other: the n-th call of a thread
// adds its value to the n-th sum of the block and returns the sum so far (the whole block's for
// the thread that runs last).
static std::vector<double> block_sums;
static size_t block_call = 0;
static double emulated_block_sum(double v) {
  if (block_call >= block_sums.size()) block_sums.resize(block_call + 1, 0.0);
  block_sums[block_call] += v;
  return block_sums[block_call++];
}
#define block_sum emulated_block_sum

// Runs `body` as the blocks (x < gx, y < gy) of `width` threads, each block's threads one after
// the other, the last first (so that thread 0, which writes a block's sum, comes last); leaves
// one block of one thread behind.
static void run_blocks(unsigned gx, unsigned gy, unsigned width, const std::function<void()>& body) {
  blockDim = {width, 1, 1};
  for (unsigned by = 0; by < gy; ++by)
    for (unsigned bx = 0; bx < gx; ++bx) {
      blockIdx = {bx, by, 0};
      block_sums.clear();
      for (int t = (int)width - 1; t >= 0; --t) {
        threadIdx = {(unsigned)t, 0, 0};
        block_call = 0;
        body();
      }
    }
  blockIdx = {0, 0, 0};
  threadIdx = {0, 0, 0};
  blockDim = {1, 1, 1};
}

// Runs `body` as a grid of `gx` blocks of 32 x 8 threads (threadIdx.y picks a row, threadIdx.x a
// value of it: the shape of windows.cu's and heads.cu's kernels), every thread in turn; leaves
// one block of one thread behind.
static void run_grid_32x8(unsigned gx, const std::function<void()>& body) {
  blockDim = {32, 8, 1};
  gridDim = {gx, 1, 1};
  for (unsigned bx = 0; bx < gx; ++bx)
    for (unsigned ty = 0; ty < 8; ++ty)
      for (unsigned tx = 0; tx < 32; ++tx) {
        blockIdx = {bx, 0, 0};
        threadIdx = {tx, ty, 0};
        body();
      }
  blockIdx = {0, 0, 0};
  threadIdx = {0, 0, 0};
  blockDim = {1, 1, 1};
  gridDim = {1, 1, 1};
}
