//! The sweep report's pictures: `curves.png` (every run's held-out MAE and training loss against
//! its steps, from `runs/NAME/log.jsonl`) and `examples-SET.png` per test set (the set's first
//! images, their ground truth and every run's map).

use std::path::Path;

use anyhow::{Context, Result};

use super::plan::Plan;
use super::stages::Paths;
use crate::atomic::write_atomic;
use crate::figures::curves::{LearningCurves, RunLog, CURVES_SIZE};
use crate::figures::grid::{example_grid, Example, MapColumn};
use crate::figures::write_png;

/// Images of a test set shown in its grid (the first ones by name: no picking).
const EXAMPLES: usize = 6;

/// The first [`EXAMPLES`] images of `set` (by file name) with their masks.
fn examples(set: &Path) -> Result<Vec<Example>> {
    let dir = set.join("image");
    let mut images: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    images.sort();
    Ok(images
        .into_iter()
        .filter_map(|image| {
            let stem = image.file_stem()?.to_str()?.to_owned();
            let mask = set.join("mask").join(format!("{stem}.png"));
            mask.is_file().then_some(Example { image, mask })
        })
        .take(EXAMPLES)
        .collect())
}

/// Writes the pictures into the sweep's folder and returns the report's section showing them.
pub fn write_figures(plan: &Plan, paths: &Paths) -> Result<String> {
    let mut runs = Vec::new();
    for r in &plan.runs {
        let log = paths.run_dir(&r.name).join("log.jsonl");
        if log.is_file() {
            runs.push((r.name.clone(), RunLog::read(&log)?));
        }
    }
    let mut s = String::from("\n## Pictures\n\n");
    if !runs.is_empty() {
        let title = format!("{}: learning curves", plan.sweep.name);
        let curves = LearningCurves {
            title: &title,
            runs: &runs,
            smoothing: 10,
        };
        write_png(&paths.out.join("curves.png"), &curves, CURVES_SIZE)?;
        s.push_str(
            "Held-out MAE after every epoch (runs given `--val`) and the training loss of each run:\n\n![learning curves](curves.png)\n\n",
        );
    }
    let data = paths.data(plan);
    for set in &plan.sweep.test_sets {
        let examples = examples(&data.join(set))?;
        if examples.is_empty() {
            continue;
        }
        let columns: Vec<MapColumn> = plan
            .runs
            .iter()
            .map(|r| MapColumn {
                title: r.name.clone(),
                maps: paths.maps_dir(&r.name, set),
            })
            .collect();
        let name = format!("examples-{set}.png");
        write_atomic(&paths.out.join(&name), &example_grid(&examples, &columns)?)?;
        s.push_str(&format!(
            "{set}: the first {} images, their ground truth and each run's map:\n\n![examples on {set}]({name})\n\n",
            examples.len()
        ));
    }
    Ok(s)
}
