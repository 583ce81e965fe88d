// What the host builds of the kernels (tests/gpu/host_*.cpp) share: the CUDA keywords defined
// away, scfnet-kernels' common.cuh as the GPU compiles it (its real block and warp reductions),
// and `launch`, which runs a kernel's blocks one after the other with every thread of a block as
// a fiber on this one OS thread, so that `__syncthreads` and the warp shuffles mean
// what they mean on a GPU:
//
// - `__syncthreads()` waits until every thread of the block has reached a barrier;
// - `__shfl_down_sync` / `__shfl_xor_sync` exchange values between the 32 lanes of a warp (the
//   lanes of thread numbers 32w … 32w + 31, counted x first), each lane reading the value its
//   source lane passed; a lane whose source lies outside the warp keeps its own (as on a GPU);
// - `__shared__` variables are shared by the threads of a block (blocks run one at a time).
//
// What a GPU would leave undefined or hang on stops the program with a message (exit status 3):
// a shuffle not reached by all 32 lanes of its warp (divergent lanes, a block whose thread count
// is not a multiple of 32), a mask other than all lanes, a barrier not reached by every thread
// of the block (some returned, or wait at a shuffle), either of them called outside `launch`.
// Each fiber runs until it waits, then the next; lanes and threads interleave only at those
// points, so a race between them shows only where it changes what a thread reads after a wait.
// Atomics are plain additions (one OS thread). Include it, then the kernel's .cu file. Not
// compiled on its own.
#pragma once
#if defined(__APPLE__)
#define _XOPEN_SOURCE 600  // ucontext, deprecated there but present
#endif
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>
using std::max;
using std::min;
#define __device__
#define __global__
#define __host__
#define __shared__ static
struct D3 { unsigned x, y, z; };
// Not `static`: the fibers switch them, and the compiler must reload them after a switch.
D3 blockIdx{0, 0, 0}, threadIdx{0, 0, 0}, blockDim{1, 1, 1}, gridDim{1, 1, 1};

namespace simt {
// A fiber's saved context, and the switch between two: on x86-64 Linux a few instructions
// (callee-saved registers, the stack pointer, the SSE and x87 control words), elsewhere
// ucontext, whose every switch is also a system call (the signal mask): 80 % of the fake
// driver's time (tests/gpu/fake_cuda) went there.
#if defined(__x86_64__) && defined(__linux__)
extern "C" void simt_switch(void** save_sp, void* to_sp);
asm(R"(
  .text
  .weak simt_switch
  .hidden simt_switch
  .type simt_switch, @function
simt_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size simt_switch, .-simt_switch
)");
struct Context {
  void* sp = nullptr;
};
inline void switch_to(Context& from, Context& to) { simt_switch(&from.sp, to.sp); }
// Prepares `c` to start `fn` on `stack` at the next switch to it: the frame simt_switch pops
// (control words, six registers, `fn` as the return address) above a null return address
// for `fn`, which never returns, so that `fn` starts with the stack aligned as after a call.
inline void prepare(Context& c, char* stack, size_t bytes, void (*fn)()) {
  void** p = (void**)(((uintptr_t)(stack + bytes)) & ~(uintptr_t)15);
  *--p = nullptr;
  *--p = (void*)fn;
  for (int i = 0; i < 6; ++i) *--p = nullptr;
  uint64_t control = 0;
  asm volatile("stmxcsr %0" : "=m"(*(uint32_t*)&control));
  asm volatile("fnstcw %0" : "=m"(*((uint16_t*)&control + 2)));
  *--p = (void*)control;
  c.sp = p;
}
#else
struct Context {
  ucontext_t context;
};
inline void switch_to(Context& from, Context& to) { swapcontext(&from.context, &to.context); }
inline void prepare(Context& c, char* stack, size_t bytes, void (*fn)()) {
  getcontext(&c.context);
  c.context.uc_stack.ss_sp = stack;
  c.context.uc_stack.ss_size = bytes;
  c.context.uc_link = nullptr;
  makecontext(&c.context, fn, 0);
}
#endif

enum class State { Ready, AtBarrier, AtShuffle, Done };
struct Fiber {
  Context context;
  State state;
  D3 thread;
  unsigned long shuffles;  // how many shuffles the thread has made
};
std::vector<Fiber> fibers;
std::vector<std::vector<char>> stacks;
Context scheduler;
int current = -1;  // the running fiber; -1 outside `launch`
const std::function<void()>* body = nullptr;
uint64_t exchange[2][32][32];  // [set][warp][lane]: the values a shuffle passes
const size_t stack_bytes = 256 * 1024;
unsigned long launches = 0;  // how many `launch` calls have run

[[noreturn]] inline void fail(const char* what) {
  std::printf("SIMT emulation: %s (block %u,%u,%u of a grid %u,%u,%u, blocks of %u,%u,%u)\n", what,
              blockIdx.x, blockIdx.y, blockIdx.z, gridDim.x, gridDim.y, gridDim.z, blockDim.x,
              blockDim.y, blockDim.z);
  std::fflush(stdout);
  std::exit(3);
}

// Gives the host back to the scheduler until the fiber is made ready again.
inline void wait(State why) {
  if (current < 0) fail("__syncthreads or a shuffle called outside launch");
  fibers[current].state = why;
  switch_to(fibers[current].context, scheduler);
}

inline void entry() {
  (*body)();
  fibers[current].state = State::Done;
  switch_to(fibers[current].context, scheduler);
}

inline unsigned linear_thread() {
  return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}

template <class T>
T shuffle(unsigned mask, T v, int source_offset, bool is_xor) {
  static_assert(sizeof(T) <= sizeof(uint64_t), "shuffled values are at most 8 bytes");
  if (mask != 0xffffffffu) fail("a shuffle with a mask other than all 32 lanes");
  unsigned t = linear_thread(), warp = t >> 5, lane = t & 31;
  unsigned source = is_xor ? lane ^ (unsigned)source_offset : lane + (unsigned)source_offset;
  if (source > 31) source = lane;
  // Two sets of slots, used in turn: a lane writes shuffle k + 2's value only after every lane
  // has reached shuffle k + 1, so after every lane has read shuffle k's.
  unsigned set = fibers[current].shuffles++ & 1;
  std::memcpy(&exchange[set][warp][lane], &v, sizeof(T));
  wait(State::AtShuffle);  // every lane has written
  T got;
  std::memcpy(&got, &exchange[set][warp][source], sizeof(T));
  return got;
}

// Runs the block `blockIdx` with `blockDim` threads to the end.
inline void run_block() {
  size_t n = (size_t)blockDim.x * blockDim.y * blockDim.z;
  if (n == 0 || n > 1024) fail("a block of 0 or more than 1024 threads");
  fibers.assign(n, Fiber{});
  if (stacks.size() < n) stacks.resize(n);
  for (size_t i = 0; i < n; ++i) {
    Fiber& f = fibers[i];
    f.thread = {(unsigned)(i % blockDim.x), (unsigned)(i / blockDim.x % blockDim.y),
                (unsigned)(i / ((size_t)blockDim.x * blockDim.y))};
    f.state = State::Ready;
    stacks[i].resize(stack_bytes);
    prepare(f.context, stacks[i].data(), stack_bytes, entry);
  }
  // The order in which warps run ahead: lowest first in even launches, highest first in odd
  // ones (`launches` counts them), so that a warp that overtakes another where the kernel lacks
  // a barrier makes the other read what it should not have yet, in one order or the other.
  bool highest_first = launches % 2 == 1;
  size_t warps = (n + 31) / 32;
  for (;;) {
    // Run the first warp (in that order) that has a ready thread, each of its ready threads
    // until it waits or returns; release its lanes when all 32 wait at a shuffle; again.
    bool ran = false;
    for (size_t k = 0; k < warps && !ran; ++k) {
      size_t w = highest_first ? warps - 1 - k : k;
      size_t lo = w * 32, hi = std::min(n, lo + 32), at = 0;
      for (size_t i = lo; i < hi; ++i)
        if (fibers[i].state == State::Ready) {
          current = (int)i;
          threadIdx = fibers[i].thread;
          switch_to(scheduler, fibers[i].context);
          ran = true;
        }
      current = -1;
      threadIdx = {0, 0, 0};
      for (size_t i = lo; i < hi; ++i) at += fibers[i].state == State::AtShuffle;
      if (at == 32)
        for (size_t i = lo; i < hi; ++i) fibers[i].state = State::Ready;
    }
    if (ran) continue;
    // Nobody can run: every thread has returned, or all wait at a barrier (release them), or
    // some lanes of a warp wait at a shuffle that others will never reach.
    size_t done = 0, at_barrier = 0;
    for (const Fiber& f : fibers) {
      done += f.state == State::Done;
      at_barrier += f.state == State::AtBarrier;
    }
    if (done == n) break;
    for (size_t w = 0; w < warps; ++w) {
      size_t lo = w * 32, hi = std::min(n, lo + 32), at = 0;
      for (size_t i = lo; i < hi; ++i) at += fibers[i].state == State::AtShuffle;
      if (at == 0) continue;
      static char what[160];
      std::snprintf(what, sizeof what,
                    "a shuffle reached by %zu of the 32 lanes of warp %zu (the warp has %zu)", at,
                    w, hi - lo);
      fail(what);
    }
    if (at_barrier != n) {
      static char what[160];
      std::snprintf(what, sizeof what,
                    "__syncthreads reached by %zu of the block's %zu threads (%zu returned)",
                    at_barrier, n, done);
      fail(what);
    }
    for (Fiber& f : fibers) f.state = State::Ready;
  }
}
}  // namespace simt

inline void __syncthreads() { simt::wait(simt::State::AtBarrier); }
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta) {
  return simt::shuffle(mask, v, (int)delta, false);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask) {
  return simt::shuffle(mask, v, lane_mask, true);
}
template <class T> T atomicAdd(T* at, T v) { T old = *at; *at += v; return old; }
#include "../../crates/scfnet-kernels/src/cuda/common.cuh"

// Runs `body` (a kernel's body) over a grid of `grid` blocks of `block` threads, as a launch:
// the blocks one after the other, the threads of each as fibers (see above). Leaves one block of
// one thread behind, so that a kernel called directly afterwards walks every index itself.
inline void launch(D3 grid, D3 block, const std::function<void()>& body) {
  gridDim = grid;
  blockDim = block;
  simt::body = &body;
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        blockIdx = {bx, by, bz};
        simt::run_block();
      }
  simt::body = nullptr;
  ++simt::launches;
  blockIdx = threadIdx = {0, 0, 0};
  blockDim = gridDim = {1, 1, 1};
}

// A launch of `gx` × `gy` blocks of `width` threads along x.
inline void run_blocks(unsigned gx, unsigned gy, unsigned width,
                       const std::function<void()>& body) {
  launch({gx, gy, 1}, {width, 1, 1}, body);
}

// A launch of `gx` blocks of 32 × 8 threads (threadIdx.y picks a row, threadIdx.x a value of
// it: the shape of windows.cu's and heads.cu's kernels).
inline void run_grid_32x8(unsigned gx, const std::function<void()>& body) {
  launch({gx, 1, 1}, {32, 8, 1}, body);
}

// The launch `scfnet_kernels::rows_per_warp(rows)` makes: one warp per row, 8 rows to a block of
// 256 threads, at most 2^20 blocks; `max_blocks` lower makes the kernels' row loops wrap.
inline void run_rows_per_warp(size_t rows, unsigned max_blocks,
                              const std::function<void()>& body) {
  size_t blocks = std::min<size_t>(std::max<size_t>((rows + 7) / 8, 1), max_blocks);
  launch({(unsigned)blocks, 1, 1}, {256, 1, 1}, body);
}
