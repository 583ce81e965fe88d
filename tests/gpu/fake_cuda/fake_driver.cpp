// A fake CUDA driver (`libcuda.so.1`) that runs on the CPU, so that scfnet's CUDA paths (the Rust
// launch code, the kernels' grids and arguments, candle's CUDA backend around them) can run on a
// machine without a GPU: `cuLaunchKernel` calls the host build of the kernel of that name
// (`kernels.cpp`, emulated threads, see `../host_cuda.h`); memory is host memory (a device pointer
// is a host address); streams and events are synchronous (every call has finished when it
// returns). What a real driver refuses, it refuses too: grids and blocks beyond an H200's limits,
// copies outside an allocation, a kernel it has no host build of (named on stderr). New device
// memory is filled with 0xff bytes (NaN in f32 and f64), so that a kernel that leaves part of
// its output unwritten shows as a mismatch. What it cannot tell: the GPU's arithmetic, timings,
// races between real threads. With FAKE_CUDA_CENSUS=FILE it counts the calls (`census.h`).
// Built by `build.sh`; see docs/cuda.md.
#include <cuda.h>

#include <atomic>
#include <chrono>
#include <cstdarg>
#include <map>
#include <mutex>
#include <string>

#define FAKE_CENSUS_LIBRARY "libcuda"
#include "census.h"
// Counts a call of the enclosing driver function (amount: bytes where it moves or allocates some).
#define COUNT(amount) census().add("call", __func__, (amount))
#include "kernels.cpp"

namespace fake {

using Invoke = void (*)(void**);

// Calls `f` with the arguments `cuLaunchKernel` passes: `params[i]` points to argument i.
template <class F, F f>
struct Invoker;
template <class... A, void (*f)(A...)>
struct Invoker<void (*)(A...), f> {
  template <size_t... I>
  static void call(void** p, std::index_sequence<I...>) {
    f(*static_cast<std::remove_reference_t<A>*>(p[I])...);
  }
  static void invoke(void** p) { call(p, std::index_sequence_for<A...>{}); }
};

struct Kernel {
  std::string name;
  Invoke invoke;
};

std::map<std::string, Kernel>& kernels() {
  static std::map<std::string, Kernel> k;
  return k;
}

struct Registrar {
  Registrar(const char* name, Invoke invoke) { kernels()[name] = Kernel{name, invoke}; }
};

#define REG(f) static fake::Registrar reg_##f(#f, &fake::Invoker<decltype(&f), &f>::invoke);

std::mutex lock;  // one launch at a time (the emulated threads share global state)
std::map<uintptr_t, size_t> allocations;  // device allocations: start → bytes
std::mutex allocations_lock;
// The pool's statistics (every device allocation counts as the pool's here): bytes in use now,
// and the most in use at once since the high watermark's last reset.
size_t used_now = 0, used_high = 0;
bool verbose = getenv("FAKE_CUDA_VERBOSE") != nullptr;

void say(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fprintf(stderr, "fake CUDA: ");
  std::vfprintf(stderr, fmt, ap);
  std::fprintf(stderr, "\n");
  va_end(ap);
}

// A device allocation of `bytes`, filled with 0xff (NaN), recorded for the bounds checks.
CUresult allocate(CUdeviceptr* out, size_t bytes) {
  void* p = std::malloc(bytes ? bytes : 1);
  if (!p) return CUDA_ERROR_OUT_OF_MEMORY;
  std::memset(p, 0xff, bytes);
  {
    std::lock_guard<std::mutex> g(allocations_lock);
    allocations[(uintptr_t)p] = bytes;
    used_now += bytes;
    if (used_now > used_high) used_high = used_now;
  }
  *out = (CUdeviceptr)p;
  return CUDA_SUCCESS;
}

// Page-locked host memory: ordinary host memory here.
CUresult host_allocate(void** out, size_t bytes) {
  *out = std::malloc(bytes ? bytes : 1);
  return *out ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

CUresult release(CUdeviceptr p) {
  std::lock_guard<std::mutex> g(allocations_lock);
  auto it = allocations.find((uintptr_t)p);
  if (it == allocations.end()) {
    say("free of %#llx, which is no allocation", (unsigned long long)p);
    return CUDA_ERROR_INVALID_VALUE;
  }
  used_now -= it->second;
  allocations.erase(it);
  std::free((void*)p);
  return CUDA_SUCCESS;
}

// Whether [p, p + bytes) lies in one device allocation.
bool inside(CUdeviceptr p, size_t bytes, const char* what) {
  std::lock_guard<std::mutex> g(allocations_lock);
  auto it = allocations.upper_bound((uintptr_t)p);
  if (it != allocations.begin()) {
    --it;
    if ((uintptr_t)p >= it->first && (uintptr_t)p + bytes <= it->first + it->second) return true;
  }
  say("%s of %zu bytes at %#llx: outside every device allocation", what, bytes,
      (unsigned long long)p);
  return false;
}

// A copy of `bytes`; `dev_dst` / `dev_src`: the device side(s) to check (0: a host side).
CUresult copy(void* dst, const void* src, size_t bytes, CUdeviceptr dev_dst, CUdeviceptr dev_src) {
  if (dev_src && !inside(dev_src, bytes, dev_dst ? "a device copy's source" : "a copy from the device"))
    return CUDA_ERROR_INVALID_VALUE;
  if (dev_dst && !inside(dev_dst, bytes, dev_src ? "a device copy's destination" : "a copy to the device"))
    return CUDA_ERROR_INVALID_VALUE;
  std::memmove(dst, src, bytes);
  return CUDA_SUCCESS;
}

CUresult set8(CUdeviceptr dst, unsigned char v, size_t n) {
  if (!inside(dst, n, "a memset")) return CUDA_ERROR_INVALID_VALUE;
  std::memset((void*)dst, v, n);
  return CUDA_SUCCESS;
}

CUresult set32(CUdeviceptr dst, unsigned int v, size_t n) {
  if (!inside(dst, 4 * n, "a memset")) return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < n; ++i) std::memcpy((char*)dst + 4 * i, &v, 4);
  return CUDA_SUCCESS;
}

struct Event {
  double ms = 0.0;
};

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

int context_token, module_token, pool_token;
std::atomic<int> streams_made{0};  // streams are made on more than one thread

}  // namespace fake

#include "registry.inc"

extern "C" {

CUresult cuInit(unsigned int) { return CUDA_SUCCESS; }
CUresult cuDriverGetVersion(int* v) { *v = 13000; return CUDA_SUCCESS; }
CUresult cuDeviceGetCount(int* n) { *n = 1; return CUDA_SUCCESS; }
CUresult cuDeviceGet(CUdevice* d, int ordinal) {
  if (ordinal != 0) return CUDA_ERROR_INVALID_DEVICE;
  *d = 0;
  return CUDA_SUCCESS;
}
CUresult cuDeviceGetName(char* name, int len, CUdevice) {
  std::snprintf(name, len, "fake CUDA device (host emulation)");
  return CUDA_SUCCESS;
}
CUresult cuDeviceTotalMem(size_t* bytes, CUdevice) { *bytes = (size_t)16 << 30; return CUDA_SUCCESS; }
CUresult cuMemGetInfo(size_t* free_bytes, size_t* total) {
  *free_bytes = (size_t)15 << 30;
  *total = (size_t)16 << 30;
  return CUDA_SUCCESS;
}
CUresult cuDeviceGetUuid(CUuuid* uuid, CUdevice) { std::memset(uuid, 0, sizeof *uuid); return CUDA_SUCCESS; }
CUresult cuDeviceGetAttribute(int* v, CUdevice_attribute a, CUdevice) {
  switch (a) {
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *v = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X: *v = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y: *v = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z: *v = 64; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X: *v = 2147483647; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y: *v = 65535; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z: *v = 65535; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK: *v = 49152; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: *v = 232448; break;
    case CU_DEVICE_ATTRIBUTE_WARP_SIZE: *v = 32; break;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *v = 132; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *v = 9; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *v = 0; break;
    case CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR: *v = 2048; break;
    case CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK: *v = 65536; break;
    case CU_DEVICE_ATTRIBUTE_CLOCK_RATE: *v = 1980000; break;
    default: *v = 0;
  }
  return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRetain(CUcontext* c, CUdevice) {
  *c = (CUcontext)&fake::context_token;
  return CUDA_SUCCESS;
}
CUresult cuDevicePrimaryCtxRelease(CUdevice) { return CUDA_SUCCESS; }
CUresult cuCtxSetCurrent(CUcontext) { return CUDA_SUCCESS; }
CUresult cuCtxGetCurrent(CUcontext* c) { *c = (CUcontext)&fake::context_token; return CUDA_SUCCESS; }
CUresult cuCtxPushCurrent(CUcontext) { return CUDA_SUCCESS; }
CUresult cuCtxPopCurrent(CUcontext* c) { if (c) *c = (CUcontext)&fake::context_token; return CUDA_SUCCESS; }
CUresult cuCtxGetDevice(CUdevice* d) { *d = 0; return CUDA_SUCCESS; }
CUresult cuCtxSynchronize() { COUNT(0); return CUDA_SUCCESS; }
CUresult cuCtxSetLimit(CUlimit, size_t) { return CUDA_SUCCESS; }
CUresult cuCtxGetLimit(size_t* v, CUlimit) { *v = 0; return CUDA_SUCCESS; }
CUresult cuCtxSetFlags(unsigned int) { return CUDA_SUCCESS; }
CUresult cuCtxGetStreamPriorityRange(int* least, int* greatest) {
  *least = 0;
  *greatest = -5;
  return CUDA_SUCCESS;
}

CUresult cuStreamCreate(CUstream* s, unsigned int) {
  COUNT(0);
  *s = (CUstream)(uintptr_t)(0x1000 + 16 * ++fake::streams_made);
  return CUDA_SUCCESS;
}
CUresult cuStreamCreateWithPriority(CUstream* s, unsigned int f, int) { return cuStreamCreate(s, f); }
CUresult cuStreamDestroy(CUstream) { return CUDA_SUCCESS; }
CUresult cuStreamSynchronize(CUstream) { COUNT(0); return CUDA_SUCCESS; }
CUresult cuStreamQuery(CUstream) { COUNT(0); return CUDA_SUCCESS; }
CUresult cuStreamWaitEvent(CUstream, CUevent, unsigned int) { COUNT(0); return CUDA_SUCCESS; }
CUresult cuStreamIsCapturing(CUstream, CUstreamCaptureStatus* s) {
  *s = CU_STREAM_CAPTURE_STATUS_NONE;
  return CUDA_SUCCESS;
}

CUresult cuEventCreate(CUevent* e, unsigned int) { COUNT(0); *e = (CUevent) new fake::Event; return CUDA_SUCCESS; }
CUresult cuEventDestroy(CUevent e) { COUNT(0); delete (fake::Event*)e; return CUDA_SUCCESS; }
CUresult cuEventRecord(CUevent e, CUstream) { COUNT(0); ((fake::Event*)e)->ms = fake::now_ms(); return CUDA_SUCCESS; }
CUresult cuEventSynchronize(CUevent) { COUNT(0); return CUDA_SUCCESS; }
CUresult cuEventQuery(CUevent) { COUNT(0); return CUDA_SUCCESS; }
CUresult cuEventElapsedTime(float* ms, CUevent a, CUevent b) {
  *ms = (float)(((fake::Event*)b)->ms - ((fake::Event*)a)->ms);
  return CUDA_SUCCESS;
}

CUresult cuMemAlloc(CUdeviceptr* p, size_t bytes) {
  COUNT(bytes);
  return fake::allocate(p, bytes);
}
CUresult cuMemAllocAsync(CUdeviceptr* p, size_t bytes, CUstream) {
  COUNT(bytes);
  return fake::allocate(p, bytes);
}
CUresult cuMemAllocFromPoolAsync(CUdeviceptr* p, size_t bytes, CUmemoryPool, CUstream) {
  COUNT(bytes);
  return fake::allocate(p, bytes);
}
CUresult cuMemFree(CUdeviceptr p) { COUNT(0); return fake::release(p); }
CUresult cuMemFreeAsync(CUdeviceptr p, CUstream) { COUNT(0); return fake::release(p); }
CUresult cuMemHostAlloc(void** p, size_t bytes, unsigned int) {
  COUNT(bytes);
  return fake::host_allocate(p, bytes);
}
CUresult cuMemAllocHost(void** p, size_t bytes) {
  COUNT(bytes);
  return fake::host_allocate(p, bytes);
}
CUresult cuMemFreeHost(void* p) { COUNT(0); std::free(p); return CUDA_SUCCESS; }
CUresult cuMemHostRegister(void*, size_t bytes, unsigned int) { COUNT(bytes); return CUDA_SUCCESS; }
CUresult cuMemHostUnregister(void*) { COUNT(0); return CUDA_SUCCESS; }
CUresult cuDeviceGetDefaultMemPool(CUmemoryPool* pool, CUdevice) {
  *pool = (CUmemoryPool)&fake::pool_token;
  return CUDA_SUCCESS;
}
CUresult cuDeviceGetMemPool(CUmemoryPool* pool, CUdevice d) { return cuDeviceGetDefaultMemPool(pool, d); }
// As the driver: the high watermark can only be reset, by setting it to zero (to what is in use).
CUresult cuMemPoolSetAttribute(CUmemoryPool, CUmemPool_attribute a, void* v) {
  if (a == CU_MEMPOOL_ATTR_USED_MEM_HIGH) {
    if (*(const uint64_t*)v != 0) return CUDA_ERROR_INVALID_VALUE;
    std::lock_guard<std::mutex> g(fake::allocations_lock);
    fake::used_high = fake::used_now;
  }
  return CUDA_SUCCESS;
}
CUresult cuMemPoolGetAttribute(CUmemoryPool, CUmemPool_attribute a, void* v) {
  uint64_t value = 0;
  {
    std::lock_guard<std::mutex> g(fake::allocations_lock);
    if (a == CU_MEMPOOL_ATTR_USED_MEM_CURRENT) value = fake::used_now;
    if (a == CU_MEMPOOL_ATTR_USED_MEM_HIGH) value = fake::used_high;
  }
  std::memcpy(v, &value, 8);
  return CUDA_SUCCESS;
}
CUresult cuMemPoolTrimTo(CUmemoryPool, size_t) { return CUDA_SUCCESS; }

CUresult cuMemcpyHtoD(CUdeviceptr dst, const void* src, size_t bytes) {
  COUNT(bytes);
  return fake::copy((void*)dst, src, bytes, dst, 0);
}
CUresult cuMemcpyHtoDAsync(CUdeviceptr dst, const void* src, size_t bytes, CUstream) {
  COUNT(bytes);
  return fake::copy((void*)dst, src, bytes, dst, 0);
}
CUresult cuMemcpyDtoH(void* dst, CUdeviceptr src, size_t bytes) {
  COUNT(bytes);
  return fake::copy(dst, (const void*)src, bytes, 0, src);
}
CUresult cuMemcpyDtoHAsync(void* dst, CUdeviceptr src, size_t bytes, CUstream) {
  COUNT(bytes);
  return fake::copy(dst, (const void*)src, bytes, 0, src);
}
CUresult cuMemcpyDtoD(CUdeviceptr dst, CUdeviceptr src, size_t bytes) {
  COUNT(bytes);
  return fake::copy((void*)dst, (const void*)src, bytes, dst, src);
}
CUresult cuMemcpyDtoDAsync(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream) {
  COUNT(bytes);
  return fake::copy((void*)dst, (const void*)src, bytes, dst, src);
}
CUresult cuMemsetD8(CUdeviceptr dst, unsigned char v, size_t n) {
  COUNT(n);
  return fake::set8(dst, v, n);
}
CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char v, size_t n, CUstream) {
  COUNT(n);
  return fake::set8(dst, v, n);
}
CUresult cuMemsetD32(CUdeviceptr dst, unsigned int v, size_t n) {
  COUNT(4 * n);
  return fake::set32(dst, v, n);
}
CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned int v, size_t n, CUstream) {
  COUNT(4 * n);
  return fake::set32(dst, v, n);
}
CUresult cuPointerGetAttribute(void* data, CUpointer_attribute a, CUdeviceptr p) {
  if (a == CU_POINTER_ATTRIBUTE_CONTEXT) {
    *(CUcontext*)data = (CUcontext)&fake::context_token;
    return CUDA_SUCCESS;
  }
  if (a == CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL) {
    *(int*)data = 0;
    return CUDA_SUCCESS;
  }
  (void)p;
  return CUDA_ERROR_NOT_SUPPORTED;
}

CUresult cuModuleLoadData(CUmodule* m, const void*) { *m = (CUmodule)&fake::module_token; return CUDA_SUCCESS; }
CUresult cuModuleUnload(CUmodule) { return CUDA_SUCCESS; }
CUresult cuModuleGetFunction(CUfunction* f, CUmodule, const char* name) {
  auto it = fake::kernels().find(name);
  if (it == fake::kernels().end()) {
    fake::say("no host build of kernel %s", name);
    return CUDA_ERROR_NOT_FOUND;
  }
  *f = (CUfunction)&it->second;
  return CUDA_SUCCESS;
}
CUresult cuFuncGetAttribute(int* v, CUfunction_attribute a, CUfunction) {
  *v = a == CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK ? 1024 : 0;
  return CUDA_SUCCESS;
}
CUresult cuFuncSetAttribute(CUfunction, CUfunction_attribute, int) { return CUDA_SUCCESS; }
CUresult cuFuncSetCacheConfig(CUfunction, CUfunc_cache) { return CUDA_SUCCESS; }

CUresult cuLaunchKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz,
                        unsigned int bx, unsigned int by, unsigned int bz, unsigned int shared,
                        CUstream, void** params, void** extra) {
  auto* k = (fake::Kernel*)f;
  unsigned long long threads = (unsigned long long)bx * by * bz;
  if (gx == 0 || gy == 0 || gz == 0 || gy > 65535 || gz > 65535 || threads == 0 ||
      threads > 1024 || bx > 1024 || by > 1024 || bz > 64 || shared > 49152 || extra) {
    fake::say("%s launched with grid (%u, %u, %u), blocks (%u, %u, %u), %u bytes of dynamic "
              "shared memory: refused as an H200 would (CUDA_ERROR_INVALID_VALUE)",
              k->name.c_str(), gx, gy, gz, bx, by, bz, shared);
    return CUDA_ERROR_INVALID_VALUE;
  }
  census().add("launch", k->name.c_str(), (uint64_t)gx * gy * gz * threads);
  std::lock_guard<std::mutex> g(fake::lock);
  if (fake::verbose)
    fake::say("%s grid (%u, %u, %u) blocks (%u, %u, %u)", k->name.c_str(), gx, gy, gz, bx, by, bz);
  launch({gx, gy, gz}, {bx, by, bz}, [&] { k->invoke(params); });
  return CUDA_SUCCESS;
}
CUresult cuLaunchHostFunc(CUstream, CUhostFn fn, void* data) {
  COUNT(0);
  fn(data);
  return CUDA_SUCCESS;
}

CUresult cuGetErrorName(CUresult e, const char** s) {
  static thread_local char buf[64];
  std::snprintf(buf, sizeof buf, "CUDA_ERROR_%d", (int)e);
  *s = e == CUDA_SUCCESS ? "CUDA_SUCCESS" : e == CUDA_ERROR_INVALID_VALUE ? "CUDA_ERROR_INVALID_VALUE"
       : e == CUDA_ERROR_NOT_FOUND ? "CUDA_ERROR_NOT_FOUND" : buf;
  return CUDA_SUCCESS;
}
CUresult cuGetErrorString(CUresult e, const char** s) {
  *s = e == CUDA_ERROR_NOT_FOUND ? "named symbol not found (the fake driver has no host build of it)"
       : e == CUDA_ERROR_INVALID_VALUE ? "invalid argument (see the fake driver's message on stderr)"
       : "error of the fake CUDA driver";
  return CUDA_SUCCESS;
}

}  // extern "C"
