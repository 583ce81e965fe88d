//! Which methods are scored on which datasets, and where their files are.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::args::EvalArgs;

/// A named folder: a method's predictions or a dataset's GT masks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Named {
    /// The name shown in tables.
    pub name: String,
    /// The folder (for a method it may contain `{dataset}`).
    pub dir: PathBuf,
}

/// One evaluation: a method's prediction folder against a dataset's GT folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// Method name.
    pub method: String,
    /// Dataset name.
    pub dataset: String,
    /// Folder of the method's predictions for this dataset.
    pub pred_dir: PathBuf,
    /// Folder of the dataset's GT masks.
    pub gt_dir: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    methods: Vec<ConfigMethod>,
    datasets: Vec<ConfigDataset>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigMethod {
    name: String,
    dir: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigDataset {
    name: String,
    gt: PathBuf,
}

/// Parses `NAME=DIR`.
fn parse_named(flag: &str, text: &str) -> Result<Named> {
    match text.split_once('=') {
        Some((name, dir)) if !name.is_empty() && !dir.is_empty() => Ok(Named {
            name: name.to_owned(),
            dir: PathBuf::from(dir),
        }),
        _ => bail!("--{flag} {text:?}: expected NAME=DIR"),
    }
}

/// A display name for a folder given without a name: its own name, or its parent's when the
/// folder is a generic `mask` / `gt` / `pred` folder.
fn name_of(dir: &Path) -> String {
    let own = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    let generic = [
        "mask", "masks", "gt", "GT", "pred", "preds", "image", "images",
    ];
    if generic.contains(&own.as_str()) {
        if let Some(parent) = dir.parent().and_then(|p| p.file_name()) {
            return parent.to_string_lossy().into_owned();
        }
    }
    own
}

fn read_config(path: &Path) -> Result<(Vec<Named>, Vec<Named>)> {
    let text = scfnet_base::read::read_text(path)
        .with_context(|| format!("{}: cannot read config", path.display()))?;
    let cfg: ConfigFile = serde_json::from_str(&text)
        .with_context(|| format!("{}: invalid config", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let methods = cfg
        .methods
        .into_iter()
        .map(|m| Named {
            name: m.name,
            dir: base.join(m.dir),
        })
        .collect();
    let datasets = cfg
        .datasets
        .into_iter()
        .map(|d| Named {
            name: d.name,
            dir: base.join(d.gt),
        })
        .collect();
    Ok((methods, datasets))
}

/// Where method `m` keeps its predictions for dataset `d`.
fn pred_dir_for(m: &Named, d: &Named, single_dataset: bool) -> Result<PathBuf> {
    let text = m.dir.to_string_lossy();
    if text.contains("{dataset}") {
        return Ok(PathBuf::from(text.replace("{dataset}", &d.name)));
    }
    let sub = m.dir.join(&d.name);
    if sub.is_dir() {
        return Ok(sub);
    }
    if single_dataset {
        return Ok(m.dir.clone());
    }
    bail!(
        "method {}: no prediction folder for dataset {} (tried {}); put the predictions there or use {{dataset}} in the method's path",
        m.name,
        d.name,
        sub.display()
    )
}

/// Turns the arguments into the list of evaluations, methods-major within each dataset.
pub fn jobs(args: &EvalArgs) -> Result<Vec<Job>> {
    let (mut methods, mut datasets) = match &args.config {
        Some(path) => read_config(path)?,
        None => (Vec::new(), Vec::new()),
    };
    for m in &args.methods {
        methods.push(parse_named("method", m)?);
    }
    for d in &args.datasets {
        datasets.push(parse_named("dataset", d)?);
    }
    if let Some(pred) = &args.pred {
        methods.push(Named {
            name: name_of(pred),
            dir: pred.clone(),
        });
    }
    if let Some(gt) = &args.gt {
        datasets.push(Named {
            name: name_of(gt),
            dir: gt.clone(),
        });
    }
    if methods.is_empty() {
        bail!("no predictions given: use --pred DIR, --method NAME=DIR or --config FILE");
    }
    if datasets.is_empty() {
        bail!("no ground truth given: use --gt DIR, --dataset NAME=DIR or --config FILE");
    }
    for (kind, list) in [("method", &methods), ("dataset", &datasets)] {
        for (i, a) in list.iter().enumerate() {
            if list[..i].iter().any(|b| b.name == a.name) {
                bail!("{kind} {:?} is given twice", a.name);
            }
        }
    }
    let single = datasets.len() == 1;
    let mut out = Vec::new();
    for d in &datasets {
        for m in &methods {
            out.push(Job {
                method: m.name.clone(),
                dataset: d.name.clone(),
                pred_dir: pred_dir_for(m, d, single)?,
                gt_dir: d.dir.clone(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_pairs_parse() {
        assert_eq!(parse_named("method", "A=x/y").unwrap().name, "A");
        assert!(parse_named("method", "x/y").is_err());
        assert!(parse_named("method", "=x").is_err());
    }

    #[test]
    fn generic_folder_names_use_the_parent() {
        assert_eq!(name_of(Path::new("data/ECSSD/mask")), "ECSSD");
        assert_eq!(name_of(Path::new("preds/MyNet")), "MyNet");
    }

    #[test]
    fn dataset_placeholder_is_replaced() {
        let m = Named {
            name: "A".into(),
            dir: "p/{dataset}/maps".into(),
        };
        let d = Named {
            name: "ECSSD".into(),
            dir: "gt".into(),
        };
        assert_eq!(
            pred_dir_for(&m, &d, false).unwrap(),
            PathBuf::from("p/ECSSD/maps")
        );
        let plain = Named {
            name: "A".into(),
            dir: "/nonexistent-dir".into(),
        };
        assert!(pred_dir_for(&plain, &d, false).is_err());
        assert_eq!(
            pred_dir_for(&plain, &d, true).unwrap(),
            PathBuf::from("/nonexistent-dir")
        );
    }
}
