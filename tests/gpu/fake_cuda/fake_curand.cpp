// A fake cuRAND (`libcurand.so.10`) for the fake CUDA driver: generators that fill device
// memory (host addresses there) from the host's std::mt19937_64. Not cuRAND's sequences.
#include <cstddef>
#include <random>

namespace {
struct Generator {
  std::mt19937_64 engine{0};
};
}  // namespace

extern "C" {
int curandCreateGenerator(void** g, int) { *g = new Generator; return 0; }
int curandDestroyGenerator(void* g) { delete (Generator*)g; return 0; }
int curandSetPseudoRandomGeneratorSeed(void* g, unsigned long long seed) {
  ((Generator*)g)->engine.seed(seed);
  return 0;
}
int curandSetStream(void*, void*) { return 0; }
int curandGenerateUniform(void* g, float* out, size_t n) {
  std::uniform_real_distribution<float> d(0.0f, 1.0f);
  for (size_t i = 0; i < n; ++i) out[i] = 1.0f - d(((Generator*)g)->engine);  // (0, 1]
  return 0;
}
int curandGenerateUniformDouble(void* g, double* out, size_t n) {
  std::uniform_real_distribution<double> d(0.0, 1.0);
  for (size_t i = 0; i < n; ++i) out[i] = 1.0 - d(((Generator*)g)->engine);
  return 0;
}
int curandGenerateNormal(void* g, float* out, size_t n, float mean, float sd) {
  std::normal_distribution<float> d(mean, sd);
  for (size_t i = 0; i < n; ++i) out[i] = d(((Generator*)g)->engine);
  return 0;
}
int curandGenerateNormalDouble(void* g, double* out, size_t n, double mean, double sd) {
  std::normal_distribution<double> d(mean, sd);
  for (size_t i = 0; i < n; ++i) out[i] = d(((Generator*)g)->engine);
  return 0;
}
}
