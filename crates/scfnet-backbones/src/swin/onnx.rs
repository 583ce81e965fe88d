//! The Swin backbone in ONNX (eval mode), at one fixed square input size.
//!
//! Window partitioning, the cyclic shift and the shifted-window mask depend on the feature map's
//! size, so the graph is written for the side that makes every stage a whole number of windows
//! with no padding (`patch · window · 8`: 384 for Swin-B with window 12, the checkpoint's own
//! size); the batch stays dynamic. The relative-position bias and the masks are constants. Each
//! step is the arithmetic of the candle forward: the same LayerNorm, the query scaled before its
//! product with the keys, the bias and mask added before the softmax, the exact (erf) GELU.

use candle_core::{Device, Result, Tensor};
use scfnet_onnx::{self as onnx, Attr, OnnxGraph, Value};
use scfnet_ops::ConvGeometry;

use super::{shift_mask, PatchMerging, SwinBlock, SwinTransformer, WindowAttention, LN_EPS};

impl SwinTransformer {
    /// The side of the square input the ONNX export is written for: every stage's map is then a
    /// whole number of windows (see the module's documentation).
    pub(super) fn onnx_side(&self) -> usize {
        self.config.patch * self.config.window * 8
    }

    /// `x` `(B, 3, S, S)` with `S` = [`SwinTransformer::onnx_side`] → the maps `x2 … x5`
    /// `(B, C, H, W)` (see [`crate::Backbone::to_onnx`]).
    pub(super) fn write_onnx(
        &self,
        g: &mut OnnxGraph,
        name: &str,
        x: &Value,
    ) -> Result<[Value; 4]> {
        let (patch, c) = (self.config.patch, self.config.embed_dim);
        let geometry = ConvGeometry {
            kernel: patch,
            stride: patch,
            padding: 0,
            dilation: 1,
        };
        let pe = format!("{name}.patch_embed");
        let y = onnx::conv(
            g,
            &format!("{pe}.proj"),
            x,
            self.proj.weight(),
            self.proj.bias(),
            geometry,
            1,
        )?;
        let y = onnx::transpose(g, &format!("{pe}.nhwc"), &y, &[0, 2, 3, 1]);
        let mut y = onnx::layer_norm(g, &format!("{pe}.norm"), &y, &self.patch_norm, LN_EPS)?;
        let x2 = onnx::transpose(g, &format!("{name}.x2"), &y, NCHW);
        let mut side = self.onnx_side() / patch;
        let mut taps = Vec::with_capacity(2);
        for (i, stage) in self.stages.iter().enumerate() {
            let dim = c << i;
            let at = format!("{name}.layers.{i}");
            if let Some(d) = &stage.downsample {
                y = d.write_onnx(g, &format!("{at}.downsample"), &y, side, dim / 2)?;
                side /= 2;
                if i <= 2 {
                    taps.push(onnx::transpose(g, &format!("{name}.x{}", i + 2), &y, NCHW));
                }
            }
            for (j, block) in stage.blocks.iter().enumerate() {
                y = block.write_onnx(g, &format!("{at}.blocks.{j}"), &y, side, dim)?;
            }
        }
        let x5 = onnx::transpose(g, &format!("{name}.x5"), &y, NCHW);
        let [x3, x4]: [Value; 2] = taps.try_into().expect("two merged taps");
        Ok([x2, x3, x4, x5])
    }
}

/// `(B, H, W, C)` → `(B, C, H, W)`.
const NCHW: &[i64] = &[0, 3, 1, 2];

impl PatchMerging {
    /// `x` `(B, side, side, c)` → `(B, side/2, side/2, 2c)`.
    fn write_onnx(
        &self,
        g: &mut OnnxGraph,
        name: &str,
        x: &Value,
        side: usize,
        c: usize,
    ) -> Result<Value> {
        let (h, c) = ((side / 2) as i64, c as i64);
        let y = onnx::reshape(g, &format!("{name}.split"), x, &[-1, h, 2, h, 2, c]);
        // timm's channel order: [w-offset, h-offset] (see `PatchMerging::forward`).
        let y = onnx::transpose(g, &format!("{name}.order"), &y, &[0, 1, 3, 4, 2, 5]);
        let y = onnx::reshape(g, &format!("{name}.merge"), &y, &[-1, h, h, 4 * c]);
        let y = onnx::layer_norm(g, &format!("{name}.norm"), &y, &self.norm, LN_EPS)?;
        onnx::linear(g, &format!("{name}.reduction"), &y, &self.reduction)
    }
}

impl SwinBlock {
    /// `x` `(B, side, side, c)` → the same shape.
    fn write_onnx(
        &self,
        g: &mut OnnxGraph,
        name: &str,
        x: &Value,
        side: usize,
        c: usize,
    ) -> Result<Value> {
        let ws = self.window;
        if side % ws != 0 {
            candle_core::bail!(
                "Swin ONNX export: a {side}x{side} map is not a whole number of {ws}x{ws} windows"
            );
        }
        // No shift when the map is one window (timm's rule, as in `SwinBlock::forward`).
        let shift = if side <= ws { 0 } else { self.shift } as i64;
        let (s, n, ci, wsi) = (side as i64, (side / ws) as i64, c as i64, ws as i64);
        let mut y = onnx::layer_norm(g, &format!("{name}.norm1"), x, &self.norm1, LN_EPS)?;
        for axis in [1, 2] {
            y = onnx::roll(g, &format!("{name}.shift{axis}"), &y, -shift, axis, s);
        }
        let y = onnx::reshape(g, &format!("{name}.grid"), &y, &[-1, n, wsi, n, wsi, ci]);
        let y = onnx::transpose(g, &format!("{name}.windows"), &y, &[0, 1, 3, 2, 4, 5]);
        let y = onnx::reshape(g, &format!("{name}.tokens"), &y, &[-1, wsi * wsi, ci]);
        let mask = (shift > 0)
            .then(|| {
                shift_mask(
                    side,
                    side,
                    ws,
                    (shift as usize, shift as usize),
                    &Device::Cpu,
                )
            })
            .transpose()?;
        let y =
            self.attn
                .write_onnx(g, &format!("{name}.attn"), &y, (ws * ws, c), mask.as_ref())?;
        let y = onnx::reshape(g, &format!("{name}.ungrid"), &y, &[-1, n, n, wsi, wsi, ci]);
        let y = onnx::transpose(g, &format!("{name}.unwindows"), &y, &[0, 1, 3, 2, 4, 5]);
        let mut y = onnx::reshape(g, &format!("{name}.map"), &y, &[-1, s, s, ci]);
        for axis in [1, 2] {
            y = onnx::roll(g, &format!("{name}.unshift{axis}"), &y, shift, axis, s);
        }
        let x = g.op("Add", &format!("{name}.residual1"), &[x, &y]);
        let m = onnx::layer_norm(g, &format!("{name}.norm2"), &x, &self.norm2, LN_EPS)?;
        let m = onnx::linear(g, &format!("{name}.mlp.fc1"), &m, &self.fc1)?;
        let m = onnx::gelu_erf(g, &format!("{name}.mlp.gelu"), &m)?;
        let m = onnx::linear(g, &format!("{name}.mlp.fc2"), &m, &self.fc2)?;
        Ok(g.op("Add", &format!("{name}.residual2"), &[&x, &m]))
    }
}

impl WindowAttention {
    /// `x` `(B · nW, N, c)` with `(N, c)` = `(tokens, c)` → the same shape; `mask` `(nW, N, N)`
    /// for shifted windows.
    fn write_onnx(
        &self,
        g: &mut OnnxGraph,
        name: &str,
        x: &Value,
        (n, c): (usize, usize),
        mask: Option<&Tensor>,
    ) -> Result<Value> {
        let (heads, hd) = (self.heads as i64, (c / self.heads) as i64);
        let tokens = n as i64;
        // The query, key and value rows of `qkv` as three linear maps (the same dot products).
        let part = |k: usize| -> Result<candle_nn::Linear> {
            let w = self.qkv.weight().narrow(0, k * c, c)?;
            let b = self.qkv.bias().map(|b| b.narrow(0, k * c, c)).transpose()?;
            Ok(candle_nn::Linear::new(w, b))
        };
        let heads_of = |g: &mut OnnxGraph, what: &str, k: usize, perm: &[i64]| -> Result<Value> {
            let y = onnx::linear(g, &format!("{name}.{what}"), x, &part(k)?)?;
            let y = onnx::reshape(
                g,
                &format!("{name}.{what}.heads"),
                &y,
                &[-1, tokens, heads, hd],
            );
            Ok(onnx::transpose(g, &format!("{name}.{what}.t"), &y, perm))
        };
        // (B·nW, heads, N, hd), keys as (B·nW, heads, hd, N).
        let q = heads_of(g, "q", 0, &[0, 2, 1, 3])?;
        let k = heads_of(g, "k", 1, &[0, 2, 3, 1])?;
        let v = heads_of(g, "v", 2, &[0, 2, 1, 3])?;
        let q = onnx::scale(g, &format!("{name}.q.scaled"), &q, self.scale)?;
        let attn = g.op("MatMul", &format!("{name}.scores"), &[&q, &k]);
        let bias = g.constant(
            &format!("{name}.relative_position_bias"),
            &self.relative_position_bias(n)?,
        )?;
        let mut attn = g.op("Add", &format!("{name}.biased"), &[&attn, &bias]);
        if let Some(mask) = mask {
            let nw = mask.dim(0)? as i64;
            let m = g.constant(&format!("{name}.mask"), &mask.unsqueeze(1)?)?;
            let a = onnx::reshape(
                g,
                &format!("{name}.per_window"),
                &attn,
                &[-1, nw, heads, tokens, tokens],
            );
            let a = g.op("Add", &format!("{name}.masked"), &[&a, &m]);
            attn = onnx::reshape(
                g,
                &format!("{name}.masked_scores"),
                &a,
                &[-1, heads, tokens, tokens],
            );
        }
        let attn = g.node(
            "Softmax",
            &format!("{name}.softmax"),
            &[Some(&attn)],
            &[("axis", Attr::Int(-1))],
        );
        let y = g.op("MatMul", &format!("{name}.mix"), &[&attn, &v]);
        let y = onnx::transpose(g, &format!("{name}.tokens_first"), &y, &[0, 2, 1, 3]);
        let y = onnx::reshape(g, &format!("{name}.joined"), &y, &[-1, tokens, c as i64]);
        onnx::linear(g, &format!("{name}.proj"), &y, &self.proj)
    }
}
