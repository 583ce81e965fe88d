// A fake cuDNN 9 (`libcudnn.so.9`) for the fake CUDA driver (`fake_driver.cpp`): the calls of
// `scfnet_kernels::cudnn` (descriptors, the _v7 heuristics, workspace sizes, the three passes of
// a 2-D convolution), computed on the host (device pointers are host addresses there) with
// cuDNN's argument order and rules: a descriptor of the wrong kind in a position, shapes that do
// not fit the convolution, an unsupported layout or type are CUDNN_STATUS_BAD_PARAM or
// NOT_SUPPORTED, named on stderr. NCHW, one group, cross-correlation, f32 and f64; host scalars
// alpha and beta of the data's type (double for f64, float for f32). With f32 data the default
// math type rounds each factor to TF32 first (tensor cores), CUDNN_FMA_MATH does not.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#define FAKE_CENSUS_LIBRARY "libcudnn"
#include "census.h"
#include "rounding.h"

namespace {
enum Status { SUCCESS = 0, NOT_INITIALIZED = 1, BAD_PARAM = 3, NOT_SUPPORTED = 9 };
enum Kind { TENSOR = 1, FILTER = 2, CONVOLUTION = 3 };
enum { FLOAT = 0, DOUBLE = 1, NCHW = 0, CROSS_CORRELATION = 1, DEFAULT_MATH = 0, FMA_MATH = 3 };
int handle_token;

struct Desc {
  int kind;
  bool set = false;
  int type = -1, format = -1;
  int n = 0, c = 0, h = 0, w = 0;       // tensor (N, C, H, W) or filter (K, C, R, S)
  int pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1, dil_h = 1, dil_w = 1, mode = -1;
  int math = DEFAULT_MATH;
};

int bad(const char* what) {
  std::fprintf(stderr, "fake cuDNN: %s\n", what);
  return BAD_PARAM;
}

// The descriptor `d` if it is a set descriptor of `kind`, else null (with a message).
Desc* as(void* d, int kind, const char* role) {
  Desc* p = (Desc*)d;
  if (!p || p->kind != kind || !p->set) {
    std::fprintf(stderr, "fake cuDNN: %s is not a set %s descriptor\n", role,
                 kind == TENSOR ? "tensor" : kind == FILTER ? "filter" : "convolution");
    return nullptr;
  }
  return p;
}

int out_side(int in, int pad, int dil, int k, int stride) {
  return (in + 2 * pad - dil * (k - 1) - 1) / stride + 1;
}

// Checks x (tensor), w (filter), conv and y (tensor) against one another as cuDNN does.
int check(void* xd, void* wd, void* cd, void* yd, Desc** x, Desc** w, Desc** c, Desc** y) {
  *x = as(xd, TENSOR, "the input");
  *w = as(wd, FILTER, "the filter");
  *c = as(cd, CONVOLUTION, "the convolution");
  *y = as(yd, TENSOR, "the output");
  if (!*x || !*w || !*c || !*y) return BAD_PARAM;
  Desc &X = **x, &W = **w, &C = **c, &Y = **y;
  if (X.type != W.type || X.type != Y.type) return bad("tensors and filter of different types");
  if (X.type != FLOAT && X.type != DOUBLE) return NOT_SUPPORTED;
  if (C.type != X.type) return bad("the convolution's compute type differs from the data's");
  if (X.format != NCHW || W.format != NCHW || Y.format != NCHW) return NOT_SUPPORTED;
  if (C.mode != CROSS_CORRELATION) return NOT_SUPPORTED;
  if (W.c != X.c) return bad("the filter's input channels differ from the input's");
  if (Y.n != X.n || Y.c != W.n) return bad("the output's batch or channels do not fit");
  if (Y.h != out_side(X.h, C.pad_h, C.dil_h, W.h, C.stride_h) ||
      Y.w != out_side(X.w, C.pad_w, C.dil_w, W.w, C.stride_w))
    return bad("the output's height or width does not fit the convolution");
  return SUCCESS;
}

enum Pass { FORWARD, BACKWARD_DATA, BACKWARD_FILTER };

// One pass over every (output position, filter tap) pair: forward y += x·w, backward data
// dx += dy·w, backward filter dw += x·dy; sums in double, each output scaled and added once.
template <class T>
void convolve(Pass pass, const Desc& X, const Desc& W, const Desc& C, const Desc& Y, double alpha,
              const T* a, const T* b, double beta, T* out) {
  bool round = sizeof(T) == 4 && C.math != FMA_MATH;
  auto f = [&](T v) { return round ? (double)round_mantissa((float)v, TF32_BITS) : (double)v; };
  long long xn = (long long)X.c * X.h * X.w, yn = (long long)Y.c * Y.h * Y.w;
  long long out_count = pass == FORWARD ? (long long)X.n * yn
                        : pass == BACKWARD_DATA ? (long long)X.n * xn
                                                : (long long)W.n * W.c * W.h * W.w;
  double* sum = new double[out_count]();
  for (int n = 0; n < X.n; ++n)
    for (int k = 0; k < W.n; ++k)
      for (int oy = 0; oy < Y.h; ++oy)
        for (int ox = 0; ox < Y.w; ++ox)
          for (int c = 0; c < X.c; ++c)
            for (int r = 0; r < W.h; ++r)
              for (int s = 0; s < W.w; ++s) {
                int iy = oy * C.stride_h - C.pad_h + r * C.dil_h;
                int ix = ox * C.stride_w - C.pad_w + s * C.dil_w;
                if (iy < 0 || iy >= X.h || ix < 0 || ix >= X.w) continue;
                long long xi = n * xn + ((long long)c * X.h + iy) * X.w + ix;
                long long wi = (((long long)k * W.c + c) * W.h + r) * W.w + s;
                long long yi = n * yn + ((long long)k * Y.h + oy) * Y.w + ox;
                if (pass == FORWARD) sum[yi] += f(a[xi]) * f(b[wi]);           // a = x, b = w
                else if (pass == BACKWARD_DATA) sum[xi] += f(b[yi]) * f(a[wi]); // a = w, b = dy
                else sum[wi] += f(a[xi]) * f(b[yi]);                           // a = x, b = dy
              }
  for (long long i = 0; i < out_count; ++i)
    out[i] = (T)(beta == 0.0 ? alpha * sum[i] : alpha * sum[i] + beta * (double)out[i]);
  delete[] sum;
}

int run(Pass pass, const void* alpha, void* ad, const void* a, void* bd, const void* b, void* cd,
        int algo, size_t workspace_bytes, const void* beta, void* od, void* out) {
  Desc *x, *w, *c, *y;
  int st = pass == FORWARD         ? check(ad, bd, cd, od, &x, &w, &c, &y)   // x, w → y
           : pass == BACKWARD_DATA ? check(od, ad, cd, bd, &x, &w, &c, &y)   // w, dy → dx
                                   : check(ad, od, cd, bd, &x, &w, &c, &y);  // x, dy → dw
  if (st != SUCCESS) return st;
  if (algo != 0) return bad("an algorithm the heuristics did not offer");
  (void)workspace_bytes;
  census().add("convolution",
               pass == FORWARD ? "forward" : pass == BACKWARD_DATA ? "backward data" : "backward filter",
               (uint64_t)x->n * y->c * y->h * y->w * w->c * w->h * w->w);
  if (std::getenv("FAKE_CUDA_VERBOSE"))
    std::fprintf(stderr, "fake cuDNN: %s of (%d, %d, %d, %d) by %d filters %dx%d, %s, math %d\n",
                 pass == FORWARD ? "forward" : pass == BACKWARD_DATA ? "backward data" : "backward filter",
                 x->n, x->c, x->h, x->w, w->n, w->h, w->w, x->type == DOUBLE ? "f64" : "f32", c->math);
  if (x->type == DOUBLE)
    convolve<double>(pass, *x, *w, *c, *y, *(const double*)alpha, (const double*)a,
                     (const double*)b, *(const double*)beta, (double*)out);
  else
    convolve<float>(pass, *x, *w, *c, *y, *(const float*)alpha, (const float*)a,
                    (const float*)b, *(const float*)beta, (float*)out);
  return SUCCESS;
}

struct AlgoPerf {
  int algo, status;
  float time;
  size_t memory;
  int determinism, math_type, reserved[3];
};

int heuristics(Desc* c, int requested, int* count, AlgoPerf* perf) {
  if (requested < 1 || !count || !perf) return BAD_PARAM;
  perf[0] = AlgoPerf{0, SUCCESS, 0.0f, 0, 1, c->math, {0, 0, 0}};
  *count = 1;
  return SUCCESS;
}
}  // namespace

extern "C" {
size_t cudnnGetVersion() { return 92801; }
const char* cudnnGetErrorString(int s) {
  return s == SUCCESS ? "CUDNN_STATUS_SUCCESS" : s == BAD_PARAM ? "CUDNN_STATUS_BAD_PARAM (fake cuDNN; see stderr)"
         : s == NOT_SUPPORTED ? "CUDNN_STATUS_NOT_SUPPORTED (fake cuDNN)" : "fake cuDNN error";
}
int cudnnCreate(void** h) { *h = &handle_token; return SUCCESS; }
int cudnnDestroy(void*) { return SUCCESS; }
int cudnnSetStream(void* h, void*) { return h == &handle_token ? SUCCESS : BAD_PARAM; }

int cudnnCreateTensorDescriptor(void** d) { *d = new Desc{TENSOR}; return SUCCESS; }
int cudnnCreateFilterDescriptor(void** d) { *d = new Desc{FILTER}; return SUCCESS; }
int cudnnCreateConvolutionDescriptor(void** d) { *d = new Desc{CONVOLUTION}; return SUCCESS; }
int cudnnDestroyTensorDescriptor(void* d) { delete (Desc*)d; return SUCCESS; }
int cudnnDestroyFilterDescriptor(void* d) { delete (Desc*)d; return SUCCESS; }
int cudnnDestroyConvolutionDescriptor(void* d) { delete (Desc*)d; return SUCCESS; }

int cudnnSetTensor4dDescriptor(void* d, int format, int type, int n, int c, int h, int w) {
  Desc* p = (Desc*)d;
  if (!p || p->kind != TENSOR) return bad("cudnnSetTensor4dDescriptor on a descriptor that is no tensor's");
  if (n <= 0 || c <= 0 || h <= 0 || w <= 0) return bad("a tensor side of 0 or less");
  p->format = format, p->type = type, p->n = n, p->c = c, p->h = h, p->w = w, p->set = true;
  return SUCCESS;
}
int cudnnSetFilter4dDescriptor(void* d, int type, int format, int k, int c, int h, int w) {
  Desc* p = (Desc*)d;
  if (!p || p->kind != FILTER) return bad("cudnnSetFilter4dDescriptor on a descriptor that is no filter's");
  if (k <= 0 || c <= 0 || h <= 0 || w <= 0) return bad("a filter side of 0 or less");
  p->format = format, p->type = type, p->n = k, p->c = c, p->h = h, p->w = w, p->set = true;
  return SUCCESS;
}
int cudnnSetConvolution2dDescriptor(void* d, int pad_h, int pad_w, int u, int v, int dil_h,
                                    int dil_w, int mode, int type) {
  Desc* p = (Desc*)d;
  if (!p || p->kind != CONVOLUTION) return bad("cudnnSetConvolution2dDescriptor on a descriptor that is no convolution's");
  if (pad_h < 0 || pad_w < 0 || u <= 0 || v <= 0 || dil_h <= 0 || dil_w <= 0)
    return bad("a negative padding, or a stride or dilation of 0 or less");
  p->pad_h = pad_h, p->pad_w = pad_w, p->stride_h = u, p->stride_w = v;
  p->dil_h = dil_h, p->dil_w = dil_w, p->mode = mode, p->type = type, p->set = true;
  return SUCCESS;
}
int cudnnSetConvolutionMathType(void* d, int math) {
  Desc* p = (Desc*)d;
  if (!p || p->kind != CONVOLUTION) return bad("cudnnSetConvolutionMathType on a descriptor that is no convolution's");
  if (math < 0 || math > 3) return bad("an unknown math type");
  p->math = math;
  return SUCCESS;
}

int cudnnGetConvolutionForwardAlgorithm_v7(void*, void* x, void* w, void* c, void* y, int req,
                                           int* count, AlgoPerf* perf) {
  Desc *X, *W, *C, *Y;
  int st = check(x, w, c, y, &X, &W, &C, &Y);
  return st != SUCCESS ? st : heuristics(C, req, count, perf);
}
int cudnnGetConvolutionBackwardDataAlgorithm_v7(void*, void* w, void* dy, void* c, void* dx,
                                                int req, int* count, AlgoPerf* perf) {
  Desc *X, *W, *C, *Y;
  int st = check(dx, w, c, dy, &X, &W, &C, &Y);
  return st != SUCCESS ? st : heuristics(C, req, count, perf);
}
int cudnnGetConvolutionBackwardFilterAlgorithm_v7(void*, void* x, void* dy, void* c, void* dw,
                                                  int req, int* count, AlgoPerf* perf) {
  Desc *X, *W, *C, *Y;
  int st = check(x, dw, c, dy, &X, &W, &C, &Y);
  return st != SUCCESS ? st : heuristics(C, req, count, perf);
}
int cudnnGetConvolutionForwardWorkspaceSize(void*, void* x, void* w, void* c, void* y, int,
                                            size_t* bytes) {
  Desc *X, *W, *C, *Y;
  *bytes = 0;
  return check(x, w, c, y, &X, &W, &C, &Y);
}
int cudnnGetConvolutionBackwardDataWorkspaceSize(void*, void* w, void* dy, void* c, void* dx, int,
                                                 size_t* bytes) {
  Desc *X, *W, *C, *Y;
  *bytes = 0;
  return check(dx, w, c, dy, &X, &W, &C, &Y);
}
int cudnnGetConvolutionBackwardFilterWorkspaceSize(void*, void* x, void* dy, void* c, void* dw,
                                                   int, size_t* bytes) {
  Desc *X, *W, *C, *Y;
  *bytes = 0;
  return check(x, dw, c, dy, &X, &W, &C, &Y);
}

int cudnnConvolutionForward(void*, const void* alpha, void* xd, const void* x, void* wd,
                            const void* w, void* cd, int algo, void*, size_t ws, const void* beta,
                            void* yd, void* y) {
  return run(FORWARD, alpha, xd, x, wd, w, cd, algo, ws, beta, yd, y);
}
int cudnnConvolutionBackwardData(void*, const void* alpha, void* wd, const void* w, void* dyd,
                                 const void* dy, void* cd, int algo, void*, size_t ws,
                                 const void* beta, void* dxd, void* dx) {
  return run(BACKWARD_DATA, alpha, wd, w, dyd, dy, cd, algo, ws, beta, dxd, dx);
}
int cudnnConvolutionBackwardFilter(void*, const void* alpha, void* xd, const void* x, void* dyd,
                                   const void* dy, void* cd, int algo, void*, size_t ws,
                                   const void* beta, void* dwd, void* dw) {
  return run(BACKWARD_FILTER, alpha, xd, x, dyd, dy, cd, algo, ws, beta, dwd, dw);
}
}
