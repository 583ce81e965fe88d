//! Dense 2-D convolutions through cuDNN (forward, backward data, backward filter), loaded at run
//! time (the `cuda` feature).
//!
//! The library is opened with `dlopen` on first use (`libcudnn.so.9`, or the file named by
//! `SCFNET_LIBCUDNN`): the binary neither links it nor needs it to start, and a machine without it
//! gets an error naming what to install, never a silent slower path. cuDNN 9 comes with PyTorch's
//! CUDA wheels (`site-packages/nvidia/cudnn/lib`) or `pip install nvidia-cudnn-cu13`.
//!
//! Only cuDNN's long-standing convolution API is used (tensor, filter and convolution
//! descriptors; the `_v7` heuristics to choose an algorithm, cached per shape), NCHW, one group.
//! Strict f32 asks for `CUDNN_FMA_MATH` (no tensor cores); TF32 allows cuDNN's default math
//! (TF32 tensor cores on Ampere and newer), as PyTorch does by default.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::{Mutex, OnceLock};

use candle_core::{CudaDevice, Result};

type Status = c_int;
type Handle = *mut c_void;
type Desc = *mut c_void;

const SUCCESS: Status = 0;
const NCHW: c_int = 0;
const CROSS_CORRELATION: c_int = 1;
const DEFAULT_MATH: c_int = 0;
const FMA_MATH: c_int = 3;

/// The element type of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Element {
    /// `f32` (`CUDNN_DATA_FLOAT`).
    F32,
    /// `f64` (`CUDNN_DATA_DOUBLE`).
    F64,
}

impl Element {
    fn code(self) -> c_int {
        match self {
            Element::F32 => 0,
            Element::F64 => 1,
        }
    }
}

/// One convolution's shapes: input `(B, C, H, W)`, `Co` filters of `k × k`, symmetric padding,
/// stride and dilation, one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvShape {
    /// Input `(B, C, H, W)`.
    pub input: (usize, usize, usize, usize),
    /// Output channels.
    pub out_channels: usize,
    /// Kernel side.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
    /// Dilation.
    pub dilation: usize,
}

impl ConvShape {
    /// The output side for an input side `n`.
    fn out(&self, n: usize) -> usize {
        (n + 2 * self.padding - self.dilation * (self.kernel - 1) - 1) / self.stride + 1
    }

    /// The output `(B, Co, Ho, Wo)`.
    pub fn output(&self) -> (usize, usize, usize, usize) {
        let (b, _, h, w) = self.input;
        (b, self.out_channels, self.out(h), self.out(w))
    }
}

/// The three passes of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Pass {
    Forward,
    BackwardData,
    BackwardFilter,
}

/// `cudnnConvolution*AlgoPerf_t` (the same layout for the three passes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct AlgoPerf {
    algo: c_int,
    status: Status,
    time: f32,
    memory: usize,
    determinism: c_int,
    math_type: c_int,
    reserved: [c_int; 3],
}

type GetAlgo = unsafe extern "C" fn(
    Handle,
    Desc,
    Desc,
    Desc,
    Desc,
    c_int,
    *mut c_int,
    *mut AlgoPerf,
) -> Status;
type GetWorkspace =
    unsafe extern "C" fn(Handle, Desc, Desc, Desc, Desc, c_int, *mut usize) -> Status;
type Run = unsafe extern "C" fn(
    Handle,
    *const c_void,
    Desc,
    *const c_void,
    Desc,
    *const c_void,
    Desc,
    c_int,
    *mut c_void,
    usize,
    *const c_void,
    Desc,
    *mut c_void,
) -> Status;

/// The cuDNN functions used, resolved once.
struct Api {
    _lib: libloading::Library,
    version: usize,
    error_string: unsafe extern "C" fn(Status) -> *const c_char,
    create: unsafe extern "C" fn(*mut Handle) -> Status,
    set_stream: unsafe extern "C" fn(Handle, *mut c_void) -> Status,
    create_tensor: unsafe extern "C" fn(*mut Desc) -> Status,
    set_tensor4d: unsafe extern "C" fn(Desc, c_int, c_int, c_int, c_int, c_int, c_int) -> Status,
    destroy_tensor: unsafe extern "C" fn(Desc) -> Status,
    create_filter: unsafe extern "C" fn(*mut Desc) -> Status,
    set_filter4d: unsafe extern "C" fn(Desc, c_int, c_int, c_int, c_int, c_int, c_int) -> Status,
    destroy_filter: unsafe extern "C" fn(Desc) -> Status,
    create_conv: unsafe extern "C" fn(*mut Desc) -> Status,
    set_conv2d: unsafe extern "C" fn(
        Desc,
        c_int,
        c_int,
        c_int,
        c_int,
        c_int,
        c_int,
        c_int,
        c_int,
    ) -> Status,
    set_math: unsafe extern "C" fn(Desc, c_int) -> Status,
    destroy_conv: unsafe extern "C" fn(Desc) -> Status,
    get_algo: [GetAlgo; 3],
    get_workspace: [GetWorkspace; 3],
    run: [Run; 3],
}

// SAFETY: the function pointers and the library handle may be used from any thread; cuDNN's
// handles (kept per GPU below, behind a mutex) are what must not be shared unsynchronised.
unsafe impl Send for Api {}
unsafe impl Sync for Api {}

/// The library's file name, or `SCFNET_LIBCUDNN`.
fn library_name() -> String {
    std::env::var("SCFNET_LIBCUDNN").unwrap_or_else(|_| "libcudnn.so.9".to_string())
}

fn load() -> std::result::Result<Api, String> {
    let name = library_name();
    // SAFETY: loading cuDNN runs its initialisers, which have no preconditions.
    let lib = unsafe { libloading::Library::new(&name) }.map_err(|e| {
        format!(
            "cuDNN ({name}) could not be loaded ({e}): install cuDNN 9 for CUDA 13 \
             (`pip install nvidia-cudnn-cu13`, or a PyTorch cu130 install's \
             site-packages/nvidia/cudnn/lib) and put its lib folder on LD_LIBRARY_PATH, or set \
             SCFNET_LIBCUDNN to the library's path"
        )
    })?;
    macro_rules! sym {
        ($name:literal) => {{
            // SAFETY: the symbol is cuDNN's function of that name, whose C signature is the
            // field's type (cuDNN 9's cudnn.h).
            let s = unsafe { lib.get($name) }.map_err(|e| {
                format!(
                    "{name}: no {} ({e}); cuDNN 9 is needed",
                    String::from_utf8_lossy(&$name[..$name.len() - 1])
                )
            })?;
            *s
        }};
    }
    let get_version: unsafe extern "C" fn() -> usize = sym!(b"cudnnGetVersion\0");
    // SAFETY: no arguments, no preconditions.
    let version = unsafe { get_version() };
    if version < 90000 {
        return Err(format!(
            "{name} is cuDNN {version}; cuDNN 9 (90000 or newer) is needed"
        ));
    }
    Ok(Api {
        version,
        error_string: sym!(b"cudnnGetErrorString\0"),
        create: sym!(b"cudnnCreate\0"),
        set_stream: sym!(b"cudnnSetStream\0"),
        create_tensor: sym!(b"cudnnCreateTensorDescriptor\0"),
        set_tensor4d: sym!(b"cudnnSetTensor4dDescriptor\0"),
        destroy_tensor: sym!(b"cudnnDestroyTensorDescriptor\0"),
        create_filter: sym!(b"cudnnCreateFilterDescriptor\0"),
        set_filter4d: sym!(b"cudnnSetFilter4dDescriptor\0"),
        destroy_filter: sym!(b"cudnnDestroyFilterDescriptor\0"),
        create_conv: sym!(b"cudnnCreateConvolutionDescriptor\0"),
        set_conv2d: sym!(b"cudnnSetConvolution2dDescriptor\0"),
        set_math: sym!(b"cudnnSetConvolutionMathType\0"),
        destroy_conv: sym!(b"cudnnDestroyConvolutionDescriptor\0"),
        get_algo: [
            sym!(b"cudnnGetConvolutionForwardAlgorithm_v7\0"),
            sym!(b"cudnnGetConvolutionBackwardDataAlgorithm_v7\0"),
            sym!(b"cudnnGetConvolutionBackwardFilterAlgorithm_v7\0"),
        ],
        get_workspace: [
            sym!(b"cudnnGetConvolutionForwardWorkspaceSize\0"),
            sym!(b"cudnnGetConvolutionBackwardDataWorkspaceSize\0"),
            sym!(b"cudnnGetConvolutionBackwardFilterWorkspaceSize\0"),
        ],
        run: [
            sym!(b"cudnnConvolutionForward\0"),
            sym!(b"cudnnConvolutionBackwardData\0"),
            sym!(b"cudnnConvolutionBackwardFilter\0"),
        ],
        _lib: lib,
    })
}

/// The loaded library, or why it could not be loaded (tried once per process).
fn api() -> Result<&'static Api> {
    static API: OnceLock<std::result::Result<Api, String>> = OnceLock::new();
    API.get_or_init(load)
        .as_ref()
        .map_err(|e| candle_core::Error::Msg(e.clone()))
}

/// Whether cuDNN can be loaded on this machine, and its version (e.g. 91002), or why not.
pub fn version() -> std::result::Result<usize, String> {
    api().map(|a| a.version).map_err(|e| e.to_string())
}

impl Api {
    fn check(&self, status: Status, what: &str) -> Result<()> {
        if status == SUCCESS {
            return Ok(());
        }
        // SAFETY: cuDNN returns a static, NUL-terminated string for any status.
        let text = unsafe { CStr::from_ptr((self.error_string)(status)) };
        candle_core::bail!("cuDNN {what}: {} ({status})", text.to_string_lossy())
    }
}

fn int(v: usize) -> Result<c_int> {
    c_int::try_from(v).map_err(|_| candle_core::Error::Msg(format!("cuDNN: size {v} exceeds int")))
}

/// The descriptors of one convolution, destroyed when dropped.
struct Descriptors<'a> {
    api: &'a Api,
    x: Desc,
    w: Desc,
    y: Desc,
    conv: Desc,
}

impl Drop for Descriptors<'_> {
    fn drop(&mut self) {
        // SAFETY: each was created by the matching create function (or is null, which cuDNN's
        // destroy functions accept).
        unsafe {
            (self.api.destroy_tensor)(self.x);
            (self.api.destroy_tensor)(self.y);
            (self.api.destroy_filter)(self.w);
            (self.api.destroy_conv)(self.conv);
        }
    }
}

impl<'a> Descriptors<'a> {
    fn new(api: &'a Api, s: &ConvShape, element: Element, math: c_int) -> Result<Self> {
        let mut d = Descriptors {
            api,
            x: std::ptr::null_mut(),
            w: std::ptr::null_mut(),
            y: std::ptr::null_mut(),
            conv: std::ptr::null_mut(),
        };
        let (b, c, h, w) = s.input;
        let (_, co, ho, wo) = s.output();
        let t = element.code();
        // SAFETY: each pointer is written by cuDNN's create function; the set functions take
        // the created descriptors and plain integers.
        unsafe {
            api.check((api.create_tensor)(&mut d.x), "create tensor descriptor")?;
            api.check((api.create_tensor)(&mut d.y), "create tensor descriptor")?;
            api.check((api.create_filter)(&mut d.w), "create filter descriptor")?;
            api.check(
                (api.create_conv)(&mut d.conv),
                "create convolution descriptor",
            )?;
            api.check(
                (api.set_tensor4d)(d.x, NCHW, t, int(b)?, int(c)?, int(h)?, int(w)?),
                "input descriptor",
            )?;
            api.check(
                (api.set_tensor4d)(d.y, NCHW, t, int(b)?, int(co)?, int(ho)?, int(wo)?),
                "output descriptor",
            )?;
            let k = int(s.kernel)?;
            api.check(
                (api.set_filter4d)(d.w, t, NCHW, int(co)?, int(c)?, k, k),
                "filter descriptor",
            )?;
            let (p, st, dl) = (int(s.padding)?, int(s.stride)?, int(s.dilation)?);
            api.check(
                (api.set_conv2d)(d.conv, p, p, st, st, dl, dl, CROSS_CORRELATION, t),
                "convolution descriptor",
            )?;
            api.check((api.set_math)(d.conv, math), "math type")?;
        }
        Ok(d)
    }

    /// The descriptor arguments of `pass`'s functions, in their order.
    fn operands(&self, pass: Pass) -> [Desc; 4] {
        match pass {
            Pass::Forward => [self.x, self.w, self.conv, self.y],
            Pass::BackwardData => [self.w, self.y, self.conv, self.x],
            Pass::BackwardFilter => [self.x, self.y, self.conv, self.w],
        }
    }
}

/// Largest workspace an algorithm may ask for.
const WORKSPACE_LIMIT: usize = 1 << 30;

type AlgoKey = (Pass, ConvShape, Element, bool);

/// Per GPU: the cuDNN handle, and the algorithm (and its math type) chosen per shape.
struct State {
    handle: Handle,
    chosen: HashMap<AlgoKey, (c_int, c_int)>,
}

// SAFETY: a cuDNN handle may be used from any thread, one call at a time (the mutex below).
unsafe impl Send for State {}

fn states() -> &'static Mutex<HashMap<usize, State>> {
    static STATES: OnceLock<Mutex<HashMap<usize, State>>> = OnceLock::new();
    STATES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Runs one pass of the convolution `shape` on candle's stream of `dev`: `a` and `b` are the
/// pass's inputs, `out` its output (device addresses):
/// - forward: `a` = x `(B, C, H, W)`, `b` = w `(Co, C, k, k)`, `out` = y;
/// - backward data: `a` = w, `b` = dy `(B, Co, Ho, Wo)`, `out` = dx;
/// - backward filter: `a` = x, `b` = dy, `out` = dw.
///
/// `tf32` allows TF32 tensor cores for f32.
///
/// # Safety
/// The addresses must hold the shapes' values of `element` on `dev`'s GPU, and `out` must not
/// overlap the inputs.
unsafe fn run(
    dev: &CudaDevice,
    pass: Pass,
    shape: &ConvShape,
    element: Element,
    tf32: bool,
    (a, b, out): (u64, u64, u64),
) -> Result<()> {
    use crate::WrapErr;
    let api = api()?;
    let stream = dev.cuda_stream();
    let ordinal = stream.context().ordinal();
    let strict = element == Element::F32 && !tf32;
    let requested_math = if strict { FMA_MATH } else { DEFAULT_MATH };
    let mut states = states()
        .lock()
        .map_err(|_| candle_core::Error::Msg("cuDNN: state lock poisoned".into()))?;
    let state = match states.entry(ordinal) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => {
            stream.context().bind_to_thread().w()?;
            let mut handle: Handle = std::ptr::null_mut();
            api.check((api.create)(&mut handle), "create handle")?;
            v.insert(State {
                handle,
                chosen: HashMap::new(),
            })
        }
    };
    api.check(
        (api.set_stream)(state.handle, stream.cu_stream() as *mut c_void),
        "set stream",
    )?;
    let i = pass as usize;
    let key = (pass, *shape, element, strict);
    let (algo, math) = match state.chosen.get(&key) {
        Some(&found) => found,
        None => {
            let d = Descriptors::new(api, shape, element, requested_math)?;
            let [p, q, r, s] = d.operands(pass);
            let mut perf = [AlgoPerf::default(); 16];
            let mut count: c_int = 0;
            api.check(
                (api.get_algo[i])(state.handle, p, q, r, s, 16, &mut count, perf.as_mut_ptr()),
                "algorithm heuristics",
            )?;
            // Strict f32: an algorithm whose math needs no tensor cores, run with FMA math.
            let found = perf[..count.clamp(0, 16) as usize]
                .iter()
                .find(|c| {
                    c.status == SUCCESS
                        && c.memory <= WORKSPACE_LIMIT
                        && (!strict || c.math_type == FMA_MATH || c.math_type == DEFAULT_MATH)
                })
                .map(|c| (c.algo, if strict { FMA_MATH } else { c.math_type }));
            let Some(found) = found else {
                candle_core::bail!(
                    "cuDNN: no algorithm for {pass:?} of {shape:?} ({element:?}, strict f32: {strict})"
                );
            };
            state.chosen.insert(key, found);
            found
        }
    };
    let d = Descriptors::new(api, shape, element, math)?;
    let [p, q, r, s] = d.operands(pass);
    let mut bytes = 0usize;
    api.check(
        (api.get_workspace[i])(state.handle, p, q, r, s, algo, &mut bytes),
        "workspace size",
    )?;
    let workspace = dev.alloc::<u8>(bytes.max(1))?;
    let ws = {
        use candle_core::cuda_backend::cudarc::driver::DevicePtr;
        let (ptr, _guard) = workspace.device_ptr(&stream);
        ptr
    };
    let (one64, zero64) = (1.0f64, 0.0f64);
    let (one32, zero32) = (1.0f32, 0.0f32);
    let (alpha, beta): (*const c_void, *const c_void) = match element {
        Element::F32 => (
            (&one32 as *const f32).cast(),
            (&zero32 as *const f32).cast(),
        ),
        Element::F64 => (
            (&one64 as *const f64).cast(),
            (&zero64 as *const f64).cast(),
        ),
    };
    // Descriptor order of the run functions: (first input, second input, conv, output) as in
    // `operands`, interleaved with the data.
    let status = (api.run[i])(
        state.handle,
        alpha,
        p,
        a as *const c_void,
        q,
        b as *const c_void,
        r,
        algo,
        ws as *mut c_void,
        bytes,
        beta,
        s,
        out as *mut c_void,
    );
    api.check(status, "convolution")?;
    drop(workspace);
    Ok(())
}

/// `y = conv(x, w)`. See [`run`] for the arguments.
///
/// # Safety
/// As [`run`]: `x`, `w` and `y` are device addresses of the shapes' sizes on `dev`.
pub unsafe fn forward(
    dev: &CudaDevice,
    shape: &ConvShape,
    element: Element,
    tf32: bool,
    (x, w, y): (u64, u64, u64),
) -> Result<()> {
    run(dev, Pass::Forward, shape, element, tf32, (x, w, y))
}

/// `dx` of `conv(x, w)` from `dy`.
///
/// # Safety
/// As [`run`].
pub unsafe fn backward_data(
    dev: &CudaDevice,
    shape: &ConvShape,
    element: Element,
    tf32: bool,
    (w, dy, dx): (u64, u64, u64),
) -> Result<()> {
    run(dev, Pass::BackwardData, shape, element, tf32, (w, dy, dx))
}

/// `dw` of `conv(x, w)` from `dy`.
///
/// # Safety
/// As [`run`].
pub unsafe fn backward_filter(
    dev: &CudaDevice,
    shape: &ConvShape,
    element: Element,
    tf32: bool,
    (x, dy, dw): (u64, u64, u64),
) -> Result<()> {
    run(dev, Pass::BackwardFilter, shape, element, tf32, (x, dy, dw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sides_follow_the_convolution_arithmetic() {
        let s = ConvShape {
            input: (2, 3, 10, 13),
            out_channels: 4,
            kernel: 3,
            stride: 2,
            padding: 2,
            dilation: 2,
        };
        assert_eq!(s.output(), (2, 4, 5, 7));
    }

    #[test]
    fn a_named_library_loads_with_every_function() {
        // With SCFNET_LIBCUDNN naming a cuDNN 9 (e.g. from the nvidia-cudnn-cu13 wheel), every
        // function resolves and the version is read; no GPU is needed for that.
        if std::env::var_os("SCFNET_LIBCUDNN").is_some() {
            let v = version().unwrap();
            assert!(v >= 90000, "{v}");
            eprintln!("cuDNN {v} loaded, every function resolved");
        }
    }

    #[test]
    fn a_missing_library_is_an_error_naming_what_to_install() {
        // Only meaningful where cuDNN is absent (the CI machine); elsewhere it loads.
        if let Err(e) = version() {
            assert!(e.contains("nvidia-cudnn-cu13"), "{e}");
            assert!(e.contains("SCFNET_LIBCUDNN"), "{e}");
        }
    }
}
