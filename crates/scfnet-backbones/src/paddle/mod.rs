//! Reading PaddlePaddle `.pdparams` checkpoints and converting them to safetensors with our names.
//!
//! A `.pdparams` file is a Python pickle of a dict `name → numpy array` (what `paddle.save`
//! writes for a state dict). [`read_pdparams`] decodes it without Python; [`convert`] renames the
//! tensors with a [`Mapping`], transposes Paddle `Linear` weights (`[in, out]` in Paddle,
//! `[out, in]` here), checks every name and shape against what the model needs, and writes a
//! safetensors file atomically.

pub mod pickle;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::error::{Result, WeightsError};
use pickle::{NdArray, Value};

/// Reads the arrays of a `.pdparams` file, in file order. Non-array entries (Paddle's
/// `StructuredToParameterName@@` table, scalars) are skipped.
pub fn read_pdparams(path: impl AsRef<Path>) -> Result<Vec<(String, NdArray)>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
        path: path.to_owned(),
        source,
    })?;
    let err = |offset: usize, message: String| WeightsError::Pickle {
        path: path.to_owned(),
        offset,
        message,
    };
    let value = pickle::parse(&bytes).map_err(|(offset, message)| err(offset, message))?;
    let Value::Dict(items) = value else {
        return Err(err(0, "the top-level object is not a dict".into()));
    };
    let mut out = Vec::with_capacity(items.len());
    for (k, v) in items {
        if let (Value::Str(name), Value::Array(a)) = (k, v) {
            let Some(width) = pickle::dtype_width(&a.dtype) else {
                // Reported by the conversion if the tensor is used.
                out.push((name, a));
                continue;
            };
            let expected = a
                .shape
                .iter()
                .try_fold(width, |acc, &d| acc.checked_mul(d))
                .unwrap_or(usize::MAX);
            if expected != a.data.len() {
                return Err(WeightsError::Truncated {
                    path: path.to_owned(),
                    name,
                    shape: a.shape,
                    dtype: a.dtype,
                    expected,
                    found: a.data.len(),
                });
            }
            out.push((name, a));
        }
    }
    Ok(out)
}

/// How checkpoint names become ours.
#[derive(Clone, Copy)]
pub struct Mapping {
    /// Our name for a checkpoint name, or `None` to drop the tensor (e.g. a classifier).
    pub rename: fn(&str) -> Option<String>,
    /// Whether a tensor (by our name) is a Paddle `Linear` weight to transpose.
    pub transpose: fn(&str) -> bool,
}

/// Paddle's BatchNorm statistics under PyTorch's names: `_mean` → `running_mean`,
/// `_variance` → `running_var`.
pub fn paddle_bn_names(name: &str) -> String {
    if let Some(stem) = name.strip_suffix("._mean") {
        format!("{stem}.running_mean")
    } else if let Some(stem) = name.strip_suffix("._variance") {
        format!("{stem}.running_var")
    } else {
        name.to_owned()
    }
}

/// The mapping of PaddleClas' MobileNetV3 (legendary) checkpoints: BN names, classifier tail
/// (`last_second_conv`, `last_conv`, `fc`) dropped, no `Linear` in the trunk.
pub const MOBILENETV3_PADDLECLAS: Mapping = Mapping {
    rename: |name| {
        let tail = ["last_second_conv.", "last_conv.", "fc."];
        (!tail.iter().any(|t| name.starts_with(t))).then(|| paddle_bn_names(name))
    },
    transpose: |_| false,
};

/// The KD-SCFNet authors' Paddle Swin Transformer (`SwinT.py`, the original Microsoft layout)
/// mapped to our timm layout, for the names of a bare backbone: patch merging moves from the end
/// of stage i (`layers.i.downsample`) to the start of stage i + 1, `Linear` weights (`qkv`,
/// `proj`, `fc1`, `fc2`, `reduction`) are transposed, and the `relative_position_index` and
/// `attn_mask` buffers, the unused final `norm` and the classifier `head` are dropped. (A whole
/// SCFNet-Swin-B checkpoint, backbone under a prefix plus decoder, is mapped by `scfnet-model`,
/// which knows its names.)
pub const SWIN_PADDLE: Mapping = Mapping {
    rename: |name| {
        if name.ends_with("relative_position_index")
            || name.ends_with("attn_mask")
            || name.starts_with("norm.")
            || name.starts_with("head.")
        {
            return None;
        }
        if let Some(after) = name.strip_prefix("layers.") {
            if let Some((stage, tail)) = after.split_once('.') {
                if let (Ok(i), Some(d)) = (stage.parse::<usize>(), tail.strip_prefix("downsample."))
                {
                    return Some(format!("layers.{}.downsample.{d}", i + 1));
                }
            }
        }
        Some(name.to_owned())
    },
    transpose: |name| {
        let linear = [
            "qkv.weight",
            "proj.weight",
            "fc1.weight",
            "fc2.weight",
            "reduction.weight",
        ];
        name.starts_with("layers.") && linear.iter().any(|l| name.ends_with(l))
    },
};

/// The mapping of the authors' checkpoints of the student and the ResNet-50 teacher: the
/// names are already ours but for Paddle's BatchNorm statistics.
pub const PADDLE_BN_ONLY: Mapping = Mapping {
    rename: |name| Some(paddle_bn_names(name)),
    transpose: |_| false,
};

/// What [`convert`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct ConversionReport {
    /// Tensors written.
    pub written: usize,
    /// Checkpoint tensors dropped by the mapping.
    pub dropped: Vec<String>,
    /// Tensors transposed.
    pub transposed: Vec<String>,
}

/// An `f32` tensor from a numpy array (f2/f4/f8 accepted), or `None` for other dtypes.
fn to_f32(a: &NdArray) -> Option<Vec<f32>> {
    let d = &a.data;
    match a.dtype.as_str() {
        "f4" => Some(
            d.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect(),
        ),
        "f8" => Some(
            d.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect(),
        ),
        "f2" => Some(
            d.chunks_exact(2)
                .map(|c| half_to_f32(u16::from_le_bytes(c.try_into().expect("2 bytes"))))
                .collect(),
        ),
        _ => None,
    }
}

/// IEEE half → f32 (no dependency for one conversion).
fn half_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: normalise.
            let shift = f.leading_zeros() - 21;
            sign | ((113 - shift) << 23) | (((f << shift) & 0x3ff) << 13)
        }
        (31, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 112) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// Converts the checkpoint `tensors` (read from `source`) to our names, checks them against
/// `expected` (our name → shape, e.g. from [`crate::SyntheticWeights::requested`]) and returns
/// the tensors to save. Missing, unexpected and mis-shaped tensors are all reported by name.
pub fn convert(
    source: &Path,
    tensors: Vec<(String, NdArray)>,
    expected: &[(String, Vec<usize>)],
    mapping: Mapping,
) -> Result<(HashMap<String, Tensor>, ConversionReport)> {
    let want: BTreeMap<&str, &[usize]> = expected
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_slice()))
        .collect();
    let mut out = HashMap::new();
    let mut report = ConversionReport {
        written: 0,
        dropped: Vec::new(),
        transposed: Vec::new(),
    };
    let mut unexpected = Vec::new();
    for (name, array) in tensors {
        let Some(ours) = (mapping.rename)(&name) else {
            report.dropped.push(name);
            continue;
        };
        let Some(&shape) = want.get(ours.as_str()) else {
            unexpected.push(name);
            continue;
        };
        let values = to_f32(&array).ok_or_else(|| WeightsError::Dtype {
            path: source.to_owned(),
            name: name.clone(),
            dtype: array.dtype.clone(),
        })?;
        let transpose = (mapping.transpose)(&ours) && array.shape.len() == 2;
        let found: Vec<usize> = if transpose {
            vec![array.shape[1], array.shape[0]]
        } else {
            array.shape.clone()
        };
        if found != shape {
            return Err(WeightsError::Shape {
                path: source.to_owned(),
                name: ours,
                expected: shape.to_vec(),
                found: array.shape.clone(),
            });
        }
        let mut t = Tensor::from_vec(values, array.shape.as_slice(), &Device::Cpu)?;
        if transpose {
            t = t.t()?.contiguous()?;
            report.transposed.push(ours.clone());
        }
        out.insert(ours, t.to_dtype(DType::F32)?);
    }
    if !unexpected.is_empty() {
        return Err(WeightsError::Unexpected {
            path: source.to_owned(),
            names: unexpected,
        });
    }
    let missing: Vec<String> = want
        .keys()
        .filter(|n| !out.contains_key(**n))
        .map(|n| n.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(WeightsError::Missing {
            path: source.to_owned(),
            names: missing,
        });
    }
    report.written = out.len();
    Ok((out, report))
}

/// Reads `input`, converts it for a model that needs `expected`, and writes `output` with
/// `metadata` as its `__metadata__`.
pub fn convert_file(
    input: &Path,
    output: &Path,
    expected: &[(String, Vec<usize>)],
    mapping: Mapping,
    metadata: Option<HashMap<String, String>>,
) -> Result<ConversionReport> {
    let tensors = read_pdparams(input)?;
    let (out, report) = convert(input, tensors, expected, mapping)?;
    crate::write_safetensors(output, &out, metadata)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats_decode() {
        assert_eq!(half_to_f32(0x3c00), 1.0);
        assert_eq!(half_to_f32(0xc000), -2.0);
        assert_eq!(half_to_f32(0x0001), 5.960_464_5e-8);
        assert_eq!(half_to_f32(0x7bff), 65504.0);
    }

    #[test]
    fn bn_names_and_tail_are_mapped() {
        assert_eq!(paddle_bn_names("conv.bn._mean"), "conv.bn.running_mean");
        assert_eq!(paddle_bn_names("conv.bn._variance"), "conv.bn.running_var");
        assert_eq!((MOBILENETV3_PADDLECLAS.rename)("fc.weight"), None);
        assert_eq!((MOBILENETV3_PADDLECLAS.rename)("last_conv.weight"), None);
        assert_eq!(
            (MOBILENETV3_PADDLECLAS.rename)("blocks.3.mid_se.conv1.bias").as_deref(),
            Some("blocks.3.mid_se.conv1.bias")
        );
    }

    #[test]
    fn swin_buffers_of_the_authors_checkpoints_are_dropped() {
        // The authors' SwinT.py registers `attn_mask` (shifted blocks) and
        // `relative_position_index` as persistable buffers: their state dicts hold both.
        for name in [
            "layers.0.blocks.1.attn_mask",
            "layers.2.blocks.17.attn_mask",
            "layers.1.blocks.0.attn.relative_position_index",
            "norm.weight",
        ] {
            assert_eq!((SWIN_PADDLE.rename)(name), None, "{name}");
        }
        assert_eq!(
            (SWIN_PADDLE.rename)("layers.0.blocks.1.attn.qkv.weight").as_deref(),
            Some("layers.0.blocks.1.attn.qkv.weight")
        );
        assert_eq!(
            (SWIN_PADDLE.rename)("layers.0.downsample.reduction.weight").as_deref(),
            Some("layers.1.downsample.reduction.weight")
        );
        assert!((SWIN_PADDLE.transpose)(
            "layers.1.downsample.reduction.weight"
        ));
        assert!(!(SWIN_PADDLE.transpose)("patch_embed.proj.weight"));
    }
}
