//! Swin Transformer (Swin-B/384 by default) with timm checkpoint names, as a multi-scale backbone.
//!
//! Names (timm ≥ 0.9, e.g. `timm/swin_base_patch4_window12_384.ms_in22k_ft_in1k`):
//! `patch_embed.{proj,norm}`, `layers.{i}.downsample.{norm,reduction}` (i ≥ 1: patch merging at
//! the start of stage i), `layers.{i}.blocks.{j}.{norm1, attn.qkv, attn.proj,
//! attn.relative_position_bias_table, norm2, mlp.fc1, mlp.fc2}`. The classifier and the final
//! `norm` (never applied by SCFNet) are not built.
//!
//! Feature taps (KD-SCFNet's `SwinT.py`): `x2` = patch embedding after its LayerNorm (stride 4),
//! `x3` = stage 1 output after patch merging (stride 8), `x4` = stage 2 output after patch merging
//! (stride 16), `x5` = stage 4 output (stride 32). Swin has no stride-2 map: `x1` is `x2`.
//!
//! Any input whose sides are multiples of 32 is accepted. Windows stay `window × window`; a
//! feature map that is not a multiple of the window is zero-padded after the cyclic shift, as
//! timm does, and the shift is dropped along a dimension no longer than one window. Where a feature
//! map is smaller than the window, timm would shrink the window and resample the relative-position
//! table; we keep the window and pad, so a checkpoint's table is used unchanged. At 384×384 this
//! is exactly the original model.
//!
//! Training: stochastic depth per [`SwinConfig::drop_path_rate`] (off by default; the authors
//! train SCFNet-Swin-B with 0.5), and gradients through every softmax, LayerNorm and
//! relative-position table (the tables are gathered at every call, so updates reach the network).

use candle_core::{Device, Module, ModuleT, Result, Tensor};
use candle_nn::{
    conv2d, layer_norm, linear, linear_no_bias, Conv2d, Conv2dConfig, LayerNorm, Linear, VarBuilder,
};
use scfnet_onnx::{OnnxGraph, Value};

use crate::features::{Backbone, Features};

mod onnx;

/// LayerNorm ε of Swin.
const LN_EPS: f64 = 1e-5;

/// Whether a backward pass may follow: the input or the weights are (derived from) variables.
/// candle's fused softmax and LayerNorm kernels have no backward, so they are used only when no
/// graph is being recorded (inference, frozen teachers).
fn recording(x: &Tensor, weights: &Tensor) -> bool {
    x.track_op() || weights.track_op()
}

/// LayerNorm over the last axis: candle's fused kernel for inference, `scfnet_ops::layer_norm`
/// (fused kernels with a backward) when a graph is being recorded or for f64 (candle's kernel
/// takes f32, f16 and bf16 only).
fn layer_norm_t(ln: &LayerNorm, x: &Tensor) -> Result<Tensor> {
    if !recording(x, ln.weight()) && x.dtype() != candle_core::DType::F64 {
        return ln.forward(x);
    }
    scfnet_ops::layer_norm(x, ln.weight(), ln.bias(), LN_EPS)
}

/// Softmax over the last axis: candle's fused kernel for inference, `scfnet_ops`' (fused
/// kernels with a backward) when a graph is being recorded.
fn softmax_t(x: &Tensor, weights: &Tensor) -> Result<Tensor> {
    if !recording(x, weights) {
        return candle_nn::ops::softmax_last_dim(x);
    }
    scfnet_ops::softmax_last_dim(x)
}

/// The exact GELU: candle's kernel for inference, `scfnet_ops::gelu_erf` (one kernel each way,
/// the exact derivative) when a graph is being recorded.
fn gelu_t(x: &Tensor, weights: &Tensor) -> Result<Tensor> {
    if !recording(x, weights) {
        return x.gelu_erf();
    }
    scfnet_ops::gelu_erf(x)
}

/// Architecture hyper-parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct SwinConfig {
    /// Channels after the patch embedding (doubled at each stage).
    pub embed_dim: usize,
    /// Blocks per stage.
    pub depths: [usize; 4],
    /// Attention heads per stage.
    pub heads: [usize; 4],
    /// Window side.
    pub window: usize,
    /// Patch side of the embedding.
    pub patch: usize,
    /// MLP hidden width as a multiple of the channels.
    pub mlp_ratio: usize,
    /// Stochastic depth of the last block; block `i` of `n` drops its residual branches with
    /// probability `rate · i / (n − 1)` per sample, in training only.
    pub drop_path_rate: f64,
}

impl SwinConfig {
    /// Swin-B, patch 4, window 12 (the SCFNet_STB teacher's backbone), without stochastic depth.
    pub fn base_window12() -> Self {
        Self {
            embed_dim: 128,
            depths: [2, 2, 18, 2],
            heads: [4, 8, 16, 32],
            window: 12,
            patch: 4,
            mlp_ratio: 4,
            drop_path_rate: 0.0,
        }
    }

    /// The stochastic-depth probability of every block, stage by stage: `linspace(0, rate, n)`
    /// over all `n` blocks (timm's and the authors' rule).
    pub fn drop_path_probabilities(&self) -> Vec<f64> {
        let n: usize = self.depths.iter().sum();
        (0..n)
            .map(|i| {
                if n > 1 {
                    self.drop_path_rate * i as f64 / (n - 1) as f64
                } else {
                    0.0
                }
            })
            .collect()
    }
}

/// Stochastic depth: in training, each sample's residual branch `y` `(B, …)` is zeroed with
/// probability `p` and the kept ones are scaled by `1 / (1 − p)` (the authors' `drop_path`:
/// `floor(1 − p + U[0, 1))` per sample).
fn drop_path(y: &Tensor, p: f64, train: bool) -> Result<Tensor> {
    if !train || p <= 0.0 {
        return Ok(y.clone());
    }
    let keep = 1.0 - p;
    let mut shape = vec![1usize; y.rank()];
    shape[0] = y.dim(0)?;
    let mask = (Tensor::rand(0f32, 1f32, shape, y.device())? + keep)?
        .floor()?
        .to_dtype(y.dtype())?;
    (y / keep)?.broadcast_mul(&mask)
}

/// The shifted-window attention mask `(nW, ws², ws²)`: 0 within a region, −100 across regions
/// (timm's values), for a padded map of `hp × wp`.
fn shift_mask(
    hp: usize,
    wp: usize,
    ws: usize,
    shift: (usize, usize),
    device: &Device,
) -> Result<Tensor> {
    let region = |pos: usize, len: usize, s: usize| -> usize {
        if s == 0 || pos < len - ws {
            0
        } else if pos < len - s {
            1
        } else {
            2
        }
    };
    let mut img = vec![0f32; hp * wp];
    for y in 0..hp {
        for x in 0..wp {
            img[y * wp + x] = (region(y, hp, shift.0) * 3 + region(x, wp, shift.1)) as f32;
        }
    }
    let n = ws * ws;
    let (nh, nw) = (hp / ws, wp / ws);
    let mut mask = vec![0f32; nh * nw * n * n];
    for wy in 0..nh {
        for wx in 0..nw {
            let ids: Vec<f32> = (0..n)
                .map(|i| img[(wy * ws + i / ws) * wp + wx * ws + i % ws])
                .collect();
            let base = (wy * nw + wx) * n * n;
            for i in 0..n {
                for j in 0..n {
                    mask[base + i * n + j] = if ids[i] == ids[j] { 0.0 } else { -100.0 };
                }
            }
        }
    }
    Tensor::from_vec(mask, (nh * nw, n, n), device)
}

/// Window multi-head self-attention with a relative-position bias.
#[derive(Clone, Debug)]
struct WindowAttention {
    qkv: Linear,
    proj: Linear,
    /// `((2·ws − 1)², heads)` learned relative-position biases.
    table: Tensor,
    /// The row of `table` for every (query, key) pair of a window (`ws⁴` picks).
    index: scfnet_ops::RowGather,
    heads: usize,
    scale: f64,
}

impl WindowAttention {
    fn new(vb: VarBuilder, dim: usize, heads: usize, ws: usize) -> Result<Self> {
        let side = 2 * ws - 1;
        let table = vb.get((side * side, heads), "relative_position_bias_table")?;
        let n = ws * ws;
        let mut index = Vec::with_capacity(n * n);
        for i in 0..n {
            for j in 0..n {
                let dy = (i / ws) as isize - (j / ws) as isize + ws as isize - 1;
                let dx = (i % ws) as isize - (j % ws) as isize + ws as isize - 1;
                index.push((dy as usize * side + dx as usize) as u32);
            }
        }
        let index = scfnet_ops::RowGather::new(index, side * side)?;
        Ok(Self {
            qkv: linear(dim, 3 * dim, vb.pp("qkv"))?,
            proj: linear(dim, dim, vb.pp("proj"))?,
            table,
            index,
            heads,
            scale: ((dim / heads) as f64).powf(-0.5),
        })
    }

    /// The bias of every (query, key) pair of a window of `n` tokens, `(heads, n, n)`, gathered
    /// from the table.
    fn relative_position_bias(&self, n: usize) -> Result<Tensor> {
        self.index
            .apply(&self.table)?
            .reshape((n, n, self.heads))?
            .permute((2, 0, 1))?
            .contiguous()
    }

    /// `x`: `(B · nW, N, C)`; `mask`: `(nW, N, N)`.
    fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (bw, n, c) = x.dims3()?;
        // (B·nW, N, 3C) → each part (B·nW, heads, N, C / heads), one gather each way.
        let qkv = scfnet_ops::linear(x, &self.qkv)?;
        let q = scfnet_ops::qkv_heads(&qkv, 0, self.heads, self.scale)?;
        let k = scfnet_ops::qkv_heads(&qkv, 1, self.heads, 1.0)?;
        let v = scfnet_ops::qkv_heads(&qkv, 2, self.heads, 1.0)?;
        // Gathered at every call, so an optimiser step on the table is seen by the next forward.
        let bias = self.relative_position_bias(n)?.to_dtype(q.dtype())?;
        let mut attn = q.matmul(&k.t()?)?.broadcast_add(&bias)?;
        if let Some(mask) = mask {
            let nw = mask.dim(0)?;
            attn = attn
                .reshape((bw / nw, nw, self.heads, n, n))?
                .broadcast_add(&mask.unsqueeze(1)?.unsqueeze(0)?)?
                .reshape((bw, self.heads, n, n))?;
        }
        let attn = softmax_t(&attn, self.qkv.weight())?;
        let y = attn.matmul(&v)?.transpose(1, 2)?.reshape((bw, n, c))?;
        scfnet_ops::linear(&y, &self.proj)
    }
}

/// One Swin block: (shifted) window attention and MLP, each with a residual.
#[derive(Clone, Debug)]
struct SwinBlock {
    norm1: LayerNorm,
    attn: WindowAttention,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    window: usize,
    /// Shift requested by the block's position (window / 2 on odd blocks, else 0).
    shift: usize,
    /// Stochastic-depth probability of both residual branches.
    drop_path: f64,
}

impl SwinBlock {
    fn new(
        vb: VarBuilder,
        dim: usize,
        heads: usize,
        cfg: &SwinConfig,
        shifted: bool,
        drop_path: f64,
    ) -> Result<Self> {
        Ok(Self {
            norm1: layer_norm(dim, LN_EPS, vb.pp("norm1"))?,
            attn: WindowAttention::new(vb.pp("attn"), dim, heads, cfg.window)?,
            norm2: layer_norm(dim, LN_EPS, vb.pp("norm2"))?,
            fc1: linear(dim, cfg.mlp_ratio * dim, vb.pp("mlp").pp("fc1"))?,
            fc2: linear(cfg.mlp_ratio * dim, dim, vb.pp("mlp").pp("fc2"))?,
            window: cfg.window,
            shift: if shifted { cfg.window / 2 } else { 0 },
            drop_path,
        })
    }

    /// `x`: `(B, H, W, C)`; `train` enables stochastic depth.
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (b, h, w, c) = x.dims4()?;
        let ws = self.window;
        // No shift along a dimension that fits in one window (timm's rule).
        let shift = (
            if h <= ws { 0 } else { self.shift },
            if w <= ws { 0 } else { self.shift },
        );
        let y = layer_norm_t(&self.norm1, x)?;
        let (hp, wp) = (h.div_ceil(ws) * ws, w.div_ceil(ws) * ws);
        let mask = if shift != (0, 0) {
            // Made once per size and device: no upload inside a step.
            let key = format!(
                "swin-shift-mask:{hp}:{wp}:{ws}:{}:{}:{:?}",
                shift.0,
                shift.1,
                x.dtype()
            );
            Some(scfnet_ops::cached_constant(&key, x.device(), || {
                shift_mask(hp, wp, ws, shift, x.device())?.to_dtype(x.dtype())
            })?)
        } else {
            None
        };
        // Rolled by the shift, zero-padded to whole windows and cut, in one gather each way.
        let windows = self
            .attn
            .forward(&scfnet_ops::window_partition(&y, ws, shift)?, mask.as_ref())?;
        let y = scfnet_ops::window_merge(&windows, ws, shift, (b, h, w))?;
        let x = (x + drop_path(&y, self.drop_path, train)?)?;
        let m = scfnet_ops::linear(
            &gelu_t(
                &scfnet_ops::linear(&layer_norm_t(&self.norm2, &x)?, &self.fc1)?,
                self.fc1.weight(),
            )?,
            &self.fc2,
        )?;
        debug_assert_eq!(m.dims4()?, (b, h, w, c));
        x + drop_path(&m, self.drop_path, train)?
    }
}

/// Patch merging: 2×2 neighbours concatenated (`x[0::2,0::2], x[1::2,0::2], x[0::2,1::2],
/// x[1::2,1::2]`), LayerNorm, then a linear map `4C → 2C`.
#[derive(Clone, Debug)]
struct PatchMerging {
    norm: LayerNorm,
    reduction: Linear,
}

impl PatchMerging {
    fn new(vb: VarBuilder, dim: usize) -> Result<Self> {
        Ok(Self {
            norm: layer_norm(4 * dim, LN_EPS, vb.pp("norm"))?,
            reduction: linear_no_bias(4 * dim, 2 * dim, vb.pp("reduction"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, c) = x.dims4()?;
        let x = x.pad_with_zeros(1, 0, h % 2)?.pad_with_zeros(2, 0, w % 2)?;
        let (h, w) = (h.div_ceil(2), w.div_ceil(2));
        // (B, H/2, 2, W/2, 2, C) → (B, H/2, W/2, [w-offset, h-offset], C): timm's channel order.
        let x = x
            .reshape((b, h, 2, w, 2, c))?
            .permute((0, 1, 3, 4, 2, 5))?
            .contiguous()?
            .reshape((b, h, w, 4 * c))?;
        scfnet_ops::linear(&layer_norm_t(&self.norm, &x)?, &self.reduction)
    }
}

/// One stage: optional patch merging, then blocks alternating plain and shifted windows.
#[derive(Clone, Debug)]
struct Stage {
    downsample: Option<PatchMerging>,
    blocks: Vec<SwinBlock>,
}

/// The Swin Transformer backbone.
#[derive(Clone, Debug)]
pub struct SwinTransformer {
    proj: Conv2d,
    patch_norm: LayerNorm,
    stages: Vec<Stage>,
    config: SwinConfig,
}

impl SwinTransformer {
    /// Builds the network with `config`, weights from `vb` (root of a timm checkpoint).
    pub fn new(vb: VarBuilder, config: SwinConfig) -> Result<Self> {
        let c = config.embed_dim;
        let pe = vb.pp("patch_embed");
        let proj = conv2d(
            3,
            c,
            config.patch,
            Conv2dConfig {
                stride: config.patch,
                ..Default::default()
            },
            pe.pp("proj"),
        )?;
        let patch_norm = layer_norm(c, LN_EPS, pe.pp("norm"))?;
        let mut stages = Vec::with_capacity(4);
        let mut drop_paths = config.drop_path_probabilities().into_iter();
        for i in 0..4 {
            let vb_stage = vb.pp("layers").pp(i);
            let dim = c << i;
            let downsample = if i > 0 {
                Some(PatchMerging::new(vb_stage.pp("downsample"), dim / 2)?)
            } else {
                None
            };
            let blocks = (0..config.depths[i])
                .map(|j| {
                    SwinBlock::new(
                        vb_stage.pp("blocks").pp(j),
                        dim,
                        config.heads[i],
                        &config,
                        j % 2 == 1,
                        drop_paths.next().unwrap_or(0.0),
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            stages.push(Stage { downsample, blocks });
        }
        Ok(Self {
            proj,
            patch_norm,
            stages,
            config,
        })
    }

    /// Swin-B, patch 4, window 12.
    pub fn base(vb: VarBuilder) -> Result<Self> {
        Self::new(vb, SwinConfig::base_window12())
    }

    /// The configuration.
    pub fn config(&self) -> &SwinConfig {
        &self.config
    }
}

/// `(B, H, W, C)` → `(B, C, H, W)`.
fn to_nchw(x: &Tensor) -> Result<Tensor> {
    x.permute((0, 3, 1, 2))?.contiguous()
}

impl Backbone for SwinTransformer {
    fn features(&self, x: &Tensor, train: bool) -> Result<Features> {
        let (_, _, h, w) = x.dims4()?;
        let side = 8 * self.config.patch;
        if h % side != 0 || w % side != 0 || h == 0 || w == 0 {
            candle_core::bail!(
                "Swin: input {h}x{w} must be a positive multiple of {side} on both sides"
            );
        }
        let y = scfnet_ops::conv2d(x, &self.proj)?;
        let y = y.permute((0, 2, 3, 1))?;
        let mut y = layer_norm_t(&self.patch_norm, &y)?;
        let x2 = to_nchw(&y)?;
        let mut taps = Vec::with_capacity(3);
        for (i, stage) in self.stages.iter().enumerate() {
            if let Some(d) = &stage.downsample {
                y = d.forward(&y)?;
                if i <= 2 {
                    taps.push(to_nchw(&y)?);
                }
            }
            for block in &stage.blocks {
                y = block.forward(&y, train)?;
            }
        }
        let x5 = to_nchw(&y)?;
        let [x3, x4]: [Tensor; 2] = taps.try_into().expect("two merged taps");
        Ok(Features {
            x1: x2.clone(),
            x2,
            x3,
            x4,
            x5,
        })
    }

    fn channels(&self) -> [usize; 5] {
        let c = self.config.embed_dim;
        [c, c, 2 * c, 4 * c, 8 * c]
    }

    /// Nothing to fold: Swin normalises with LayerNorm, whose statistics are per token.
    fn fold_batch_norms(&mut self) -> Result<()> {
        Ok(())
    }

    /// The graph for [`Backbone::onnx_input_side`] only (see the `onnx` submodule).
    fn to_onnx(&self, g: &mut OnnxGraph, name: &str, x: &Value) -> Result<[Value; 4]> {
        self.write_onnx(g, name, x)
    }

    /// `patch · window · 8` (384 for Swin-B): the size at which every stage is a whole number of
    /// windows.
    fn onnx_input_side(&self) -> Option<usize> {
        Some(self.onnx_side())
    }

    fn clone_box(&self) -> Box<dyn Backbone> {
        Box::new(self.clone())
    }
}

impl ModuleT for SwinTransformer {
    /// The deepest map `x5`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.features(x, train)?.x5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_in_f64_runs_and_agrees_with_f32() {
        // A tiny Swin with shifted windows (8×8 maps of 2×2 windows at stage 1); eval in f64
        // used to stop at candle's fused LayerNorm, which has no f64 kernel.
        let config = SwinConfig {
            embed_dim: 8,
            depths: [2, 2, 2, 2],
            heads: [1, 2, 2, 4],
            window: 2,
            patch: 4,
            mlp_ratio: 2,
            drop_path_rate: 0.0,
        };
        let run = |dtype: candle_core::DType| {
            let (vb, _) = crate::synthetic_var_builder(dtype, &Device::Cpu);
            let net = SwinTransformer::new(vb, config.clone()).unwrap();
            let x =
                crate::synthetic_image("swin-f64", &[1, 3, 64, 64], dtype, &Device::Cpu).unwrap();
            let x5 = net.features(&x, false).unwrap().x5;
            x5.to_dtype(candle_core::DType::F64)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()
        };
        let (a, b) = (run(candle_core::DType::F32), run(candle_core::DType::F64));
        let diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        assert!(diff < 1e-4, "f32 vs f64: {diff}");
        assert!(b.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn drop_path_drops_whole_samples_and_keeps_the_expectation() {
        let y = Tensor::ones((4000, 3, 2), candle_core::DType::F64, &Device::Cpu).unwrap();
        assert_eq!(
            drop_path(&y, 0.5, false)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap(),
            24000.0
        );
        let d = drop_path(&y, 0.25, true)
            .unwrap()
            .flatten_from(1)
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        let keep = 1.0 / 0.75;
        let mut kept = 0;
        for row in &d {
            // One draw per sample: all of a sample's values are dropped or all kept (scaled).
            assert!(row.iter().all(|&v| v == 0.0) || row.iter().all(|&v| (v - keep).abs() < 1e-12));
            kept += usize::from(row[0] != 0.0);
        }
        // 3000 expected; binomial standard deviation ≈ 27.
        assert!((2800..3200).contains(&kept), "{kept} of 4000 kept");
    }

    #[test]
    fn drop_path_probabilities_rise_linearly_over_all_blocks() {
        let c = SwinConfig {
            drop_path_rate: 0.5,
            ..SwinConfig::base_window12()
        };
        let p = c.drop_path_probabilities();
        assert_eq!(p.len(), 24);
        assert_eq!((p[0], p[23]), (0.0, 0.5));
        assert!((p[1] - 0.5 / 23.0).abs() < 1e-15);
    }

    #[test]
    fn shift_mask_separates_the_rolled_regions() {
        // 4×4 map, window 2, shift 1: the last window mixes three regions.
        let m = shift_mask(4, 4, 2, (1, 1), &Device::Cpu).unwrap();
        assert_eq!(m.dims3().unwrap(), (4, 4, 4));
        let last = m.get(3).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(last[0], [0.0, -100.0, -100.0, -100.0]);
        let first = m.get(0).unwrap().to_vec2::<f32>().unwrap();
        assert!(first.iter().flatten().all(|&v| v == 0.0));
    }
}
