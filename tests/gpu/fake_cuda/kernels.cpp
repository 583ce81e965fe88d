// Every kernel the fake driver can run, compiled for the host as the host builds compile them
// (`../host_cuda.h`: blocks one after the other, threads as fibers, real barriers and warp
// shuffles): scfnet-kernels' .cu files, and candle-kernels' (f32 and f64 parts; the half-precision
// ones are compiled only for a GPU architecture), which `build.sh` copies from cargo's registry
// with `candle_compat.cuh` in place of their compatibility.cuh and lists in
// `candle_kernels.inc`. `build.sh` then lists the `extern "C"` functions of this file (`nm`) and
// registers each under its name for `cuModuleGetFunction`.
#include "../host_cuda.h"
#include "../../../crates/scfnet-kernels/src/cuda/activation.cu"
#include "../../../crates/scfnet-kernels/src/cuda/batch_norm.cu"
#include "../../../crates/scfnet-kernels/src/cuda/depthwise.cu"
#include "../../../crates/scfnet-kernels/src/cuda/gelu.cu"
#include "../../../crates/scfnet-kernels/src/cuda/heads.cu"
#include "../../../crates/scfnet-kernels/src/cuda/im2col.cu"
#include "../../../crates/scfnet-kernels/src/cuda/layer_norm.cu"
#include "../../../crates/scfnet-kernels/src/cuda/pool.cu"
#include "../../../crates/scfnet-kernels/src/cuda/reduce.cu"
#include "../../../crates/scfnet-kernels/src/cuda/sgd.cu"
#include "../../../crates/scfnet-kernels/src/cuda/softmax.cu"
#include "../../../crates/scfnet-kernels/src/cuda/windows.cu"
#include "candle_kernels.inc"
