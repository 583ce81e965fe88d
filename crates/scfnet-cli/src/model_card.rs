//! The model card (`README.md`) of a weights folder written by `scfnet convert --hub-dir`.

use scfnet_model::{HubConfig, ModelKind};

/// The authors' published MAE of each released network (their README; DUTS-TE, ECSSD, HKU-IS,
/// DUT-OMRON, PASCAL-S).
const PUBLISHED_MAE: [(&str, ModelKind, [f64; 5]); 5] = [
    (
        "FS-SCFNet",
        ModelKind::Student,
        [0.041, 0.039, 0.031, 0.059, 0.068],
    ),
    (
        "KD-SCFNet (teacher SCFNet_R50)",
        ModelKind::Student,
        [0.035, 0.035, 0.029, 0.052, 0.061],
    ),
    (
        "KD-SCFNet (teacher SCFNet_STB)",
        ModelKind::Student,
        [0.035, 0.030, 0.026, 0.054, 0.056],
    ),
    (
        "SCFNet_R50",
        ModelKind::R50,
        [0.031, 0.031, 0.026, 0.047, 0.060],
    ),
    (
        "SCFNet_STB",
        ModelKind::SwinB,
        [0.026, 0.023, 0.021, 0.045, 0.051],
    ),
];

fn title(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Student => "FS-/KD-SCFNet (MobileNetV3-Large ×0.5, 0.8 M parameters)",
        ModelKind::R50 => "SCFNet_R50 (ResNet-50 teacher, 26.15 M parameters)",
        ModelKind::SwinB => "SCFNet_STB (Swin-B teacher, 88.16 M parameters)",
    }
}

/// The model card of converted weights described by `config`.
pub fn render(config: &HubConfig) -> String {
    let kind = config.network;
    let mut rows = String::new();
    for (name, k, mae) in PUBLISHED_MAE {
        if k == kind {
            rows += &format!(
                "| {name} | {} |\n",
                mae.map(|v| format!("{v:.3}")).join(" | ")
            );
        }
    }
    let source = match &config.source {
        Some(s) => format!(
            "`{}` ({} checkpoint, SHA-256 `{}`)",
            s.file, s.format, s.sha256
        ),
        None => "an scfnet-rs checkpoint".into(),
    };
    format!(
        r#"---
library_name: scfnet
license: other
tags:
- salient-object-detection
- image-segmentation
- kd-scfnet
---

# {title}

Salient object detection: an RGB image in, a grey map of the object a person looks at first out.
Network `{kind}` of KD-SCFNet, *Towards More Accurate and Efficient Salient Object Detection via
Knowledge Distillation* (ECCV 2022); the authors' code: <https://github.com/zhangjinCV/KD-SCFNet>.

These are the authors' weights converted from {source} by `scfnet convert` of
[scfnet-rs](https://github.com/scfnet-rs/scfnet-rs): same values, scfnet-rs tensor names
(`model.safetensors`), and `config.json` naming the network and its input
(`{size}×{size}`, RGB in [0, 255] minus mean {mean:?}, divided by std {std:?}).

## Use

```sh
scfnet predict --hub ORG/REPO --input images/ --output maps/
```

## Published scores of the released checkpoints (MAE, the authors' README)

| checkpoint | DUTS-TE | ECSSD | HKU-IS | DUT-OMRON | PASCAL-S |
|---|---|---|---|---|---|
{rows}
Which row these weights are is the row of the file they were converted from; the scores are the
authors', not re-measured here.

## Licence

The authors' repository states no licence for its code or weights: ask them before
redistributing these weights.
"#,
        title = title(kind),
        size = config.input_size,
        mean = config.mean,
        std = config.std,
    )
}
