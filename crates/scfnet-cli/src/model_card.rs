//! The model card (`README.md`) of a weights folder written by `scfnet convert --hub-dir`.

use scfnet_model::HubConfig;

/// The model card of converted weights described by `config`.
pub fn render(config: &HubConfig) -> String {
    let kind = config.network;
    let mut rows = String::new();
    for (name, mae) in kind.spec().published_mae {
        rows += &format!(
            "| {name} | {} |\n",
            mae.map(|v| format!("{v:.3}")).join(" | ")
        );
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
        title = kind.spec().title,
        size = config.input_size,
        mean = config.mean,
        std = config.std,
    )
}
