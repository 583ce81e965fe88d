// A host build of the element-wise kernels (no GPU): activation.cu, gelu.cu and reduce.cu,
// launched over a grid smaller than their values (the grid-stride loop wraps), against plain
// references. The activations with the CPU kernel's values and derivatives (activation.rs) at
// and around their kinks: hard-swish at ±3 (PyTorch's derivative: x/3 + 1/2 up to 3
// inclusive), Paddle's hard-sigmoid where slope·x + offset meets 0 and 1 (its slope only
// strictly inside), ReLU from its output at 0 — bit for bit; the exact GELU against erf and its
// derivative against central differences of the value (within 1e-8); the batch sum in batch
// order, bit for bit. Values past each output must stay untouched. CI builds and runs it
// (scfnet-kernels' test `host_builds`); by hand, from the repository root:
//
//   g++ -std=c++17 -w tests/gpu/host_elementwise.cpp -o /tmp/host_elementwise && /tmp/host_elementwise
#include "host_cuda.h"
#include "../../crates/scfnet-kernels/src/cuda/activation.cu"
#include "../../crates/scfnet-kernels/src/cuda/gelu.cu"
#include "../../crates/scfnet-kernels/src/cuda/reduce.cu"

// The kernels by element type (the .cu files define them per type, `extern "C"`).
static void act_fwd(const float* x, float* y, double s, double o, size_t n, size_t k) { activation_fwd_f32(x, y, s, o, n, k); }
static void act_fwd(const double* x, double* y, double s, double o, size_t n, size_t k) { activation_fwd_f64(x, y, s, o, n, k); }
static void act_grad(const float* x, const float* g, float* dx, double s, double o, size_t n, size_t k) { activation_grad_f32(x, g, dx, s, o, n, k); }
static void act_grad(const double* x, const double* g, double* dx, double s, double o, size_t n, size_t k) { activation_grad_f64(x, g, dx, s, o, n, k); }
static void gelu_fwd(const float* x, float* y, size_t n) { gelu_fwd_f32(x, y, n); }
static void gelu_fwd(const double* x, double* y, size_t n) { gelu_fwd_f64(x, y, n); }
static void gelu_grad(const float* x, const float* g, float* dx, size_t n) { gelu_grad_f32(x, g, dx, n); }
static void gelu_grad(const double* x, const double* g, double* dx, size_t n) { gelu_grad_f64(x, g, dx, n); }

static int fails = 0, cases = 0;
const size_t pad = 16;

template <typename T>
static void expect(const char* what, const std::vector<T>& got, const std::vector<T>& want, double tol) {
  ++cases;
  for (size_t i = 0; i < got.size(); ++i) {
    double e = i < want.size() ? (double)want[i] : -9.0, a = (double)got[i];
    bool ok = tol == 0.0 ? a == e : std::fabs(a - e) <= tol * (1.0 + std::fabs(e));
    if (!ok && fails++ < 12) printf("%s (%zu-byte values): %zu: %.17g != %.17g\n", what, sizeof(T), i, a, e);
  }
}

// Runs `body` as `per_element` would launch it, but with 2 blocks of 64 threads: fewer threads
// than values.
static void run_small_grid(const std::function<void()>& body) { run_blocks(2, 1, 64, body); }

template <typename T>
static void activations() {
  std::vector<T> x;
  for (double v : {-4.0, -3.0, -2.5, -1.0, 0.0, 1e-7, 1.0, 2.5, 3.0, 3.5, 7.0}) {
    x.push_back((T)v);
    x.push_back((T)std::nextafter(v, 10.0));
    x.push_back((T)std::nextafter(v, -10.0));
  }
  for (int i = 0; i < 200; ++i) x.push_back((T)(8.0 * std::sin(0.77 * i)));
  size_t n = x.size();
  std::vector<T> g(n);
  for (size_t i = 0; i < n; ++i) g[i] = (T)(1.0 + 0.5 * std::cos(1.3 * i));
  const double slope = (double)0.2f, offset = 0.5;  // Paddle's hard-sigmoid, slope in f32
  for (size_t kind : {0, 1, 2}) {
    std::vector<T> y_ref(n), dx_ref(n);
    for (size_t i = 0; i < n; ++i) {
      T v = x[i], s = (T)slope, o = (T)offset, value, slope_here;
      if (kind == 0) {
        T c = v + (T)3;
        c = c < (T)0 ? (T)0 : (c > (T)6 ? (T)6 : c);
        value = v * c / (T)6;
        slope_here = v < (T)-3 ? (T)0 : (v <= (T)3 ? v / (T)3 + (T)0.5 : (T)1);
      } else if (kind == 1) {
        T yy = s * v + o;
        value = yy < (T)0 ? (T)0 : (yy > (T)1 ? (T)1 : yy);
        slope_here = yy > (T)0 && yy < (T)1 ? s : (T)0;
      } else {
        value = v > (T)0 ? v : (T)0;
        slope_here = v > (T)0 ? (T)1 : (T)0;
      }
      y_ref[i] = value;
      dx_ref[i] = g[i] * slope_here;
    }
    std::vector<T> y(n + pad, (T)-9), dx(n + pad, (T)-9);
    run_small_grid([&] { act_fwd(x.data(), y.data(), slope, offset, n, kind); });
    run_small_grid([&] { act_grad(x.data(), g.data(), dx.data(), slope, offset, n, kind); });
    const char* names[] = {"hard-swish", "hard-sigmoid", "relu"};
    char what[64];
    // ReLU is gradient-only on the GPU (kind 2 seen from the output), its value unused.
    if (kind != 2) {
      snprintf(what, sizeof what, "%s value", names[kind]);
      expect(what, y, y_ref, 0.0);
    }
    snprintf(what, sizeof what, "%s gradient", names[kind]);
    expect(what, dx, dx_ref, 0.0);
  }
}

template <typename T>
static void gelu(double tol) {
  size_t n = 301;
  std::vector<T> x(n), g(n), y_ref(n), fd(n);
  for (size_t i = 0; i < n; ++i) {
    x[i] = (T)(-6.0 + 12.0 * i / (n - 1));
    g[i] = (T)(1.0 + 0.25 * std::sin((double)i));
    double v = (double)x[i];
    y_ref[i] = (T)(0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))));
    // The derivative from the value alone: a central difference of x·Φ(x).
    double h = 1e-5, up = v + h, down = v - h;
    double slope = (0.5 * up * (1.0 + std::erf(up / std::sqrt(2.0))) -
                    0.5 * down * (1.0 + std::erf(down / std::sqrt(2.0)))) / (2 * h);
    fd[i] = (T)((double)g[i] * slope);
  }
  std::vector<T> y(n + pad, (T)-9), dx(n + pad, (T)-9);
  run_small_grid([&] { gelu_fwd(x.data(), y.data(), n); });
  run_small_grid([&] { gelu_grad(x.data(), g.data(), dx.data(), n); });
  expect("gelu value", y, y_ref, tol);
  expect("gelu gradient against central differences", dx, fd, std::max(tol, 1e-8));
}

template <typename T>
static void batch_sum() {
  const size_t batch = 5, n = 150;
  std::vector<T> x(batch * n), want(n);
  for (size_t i = 0; i < x.size(); ++i) x[i] = (T)(std::sin(0.3 * i) * 100.0 + 1e-3 * i);
  for (size_t i = 0; i < n; ++i) {
    double acc = 0.0;
    for (size_t b = 0; b < batch; ++b) acc += (double)x[b * n + i];
    want[i] = (T)acc;
  }
  std::vector<T> out(n + pad, (T)-9);
  run_small_grid([&] { sum_batch<T>(x.data(), out.data(), batch, n); });
  expect("batch sum", out, want, 0.0);
}

int main() {
  activations<float>();
  activations<double>();
  gelu<double>(1e-15);
  gelu<float>(1e-7);
  batch_sum<float>();
  batch_sum<double>();
  printf("host element-wise: %d cases, %d mismatches\n", cases, fails);
  return fails != 0;
}
