// Every kernel the fake driver can run, compiled for the host as the host builds compile them
// (`../host_cuda.h`: blocks one after the other, threads as fibers, real barriers and warp
// shuffles): every .cu file of scfnet-kernels (`build.sh` lists them in `scfnet_kernels.inc`),
// and candle-kernels' (f32 and f64 parts; the half-precision ones are compiled only for a GPU
// architecture), which `build.sh` copies from cargo's registry with `candle_compat.cuh` in
// place of their compatibility.cuh and lists in `candle_kernels.inc`. `build.sh` then lists
// the `extern "C"` functions of this file (`nm`) and registers each under its name for
// `cuModuleGetFunction`.
#include "../host_cuda.h"
#include "scfnet_kernels.inc"
#include "candle_kernels.inc"
