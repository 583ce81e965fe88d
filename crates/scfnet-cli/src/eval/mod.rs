//! `scfnet eval`: scores saliency maps against GT masks and writes tables, curves and plots.

mod args;
mod curves;
mod matching;
mod plan;
mod plot;
pub(crate) mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sod_metrics::{load_pair, Accumulator, AccumulatorOptions, GraySource, ResizeMode};

pub use args::EvalArgs;
use args::ResizeArg;
use matching::{match_folders, NameRule};
use report::EvalResult;

use crate::atomic::write_atomic;

/// How many file names a problem list shows before summarising the rest.
const LIST_LIMIT: usize = 25;

/// Renders the results in one output format.
type Renderer = fn(&[EvalResult]) -> String;

/// One prediction / GT pair of one job.
struct Item {
    job: usize,
    name: String,
    pred: PathBuf,
    gt: PathBuf,
}

/// Prints `title` and up to [`LIST_LIMIT`] paths.
fn list_files(title: &str, paths: &[PathBuf]) {
    if paths.is_empty() {
        return;
    }
    eprintln!("{title} ({}):", paths.len());
    for p in paths.iter().take(LIST_LIMIT) {
        eprintln!("  {}", p.display());
    }
    if paths.len() > LIST_LIMIT {
        eprintln!("  … and {} more", paths.len() - LIST_LIMIT);
    }
}

fn progress_bar(len: usize) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} scoring [{bar:40}] {pos}/{len} images, {per_sec}, ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb
}

/// Refuses reports that would land on each other (`--json X --csv X`) or on a file the
/// evaluation reads (a prediction or a mask), before anything is scored.
fn check_outputs(args: &EvalArgs, items: &[Item]) -> Result<()> {
    let named: [(&str, &Option<PathBuf>); 7] = [
        ("--json", &args.json),
        ("--csv", &args.csv),
        ("--markdown", &args.markdown),
        ("--latex", &args.latex),
        ("--per-image", &args.per_image),
        ("--curves", &args.curves),
        ("--plot", &args.plot),
    ];
    let outputs: Vec<(&str, &PathBuf)> = named
        .iter()
        .filter_map(|(flag, p)| p.as_ref().map(|p| (*flag, p)))
        .filter(|(_, p)| p.as_os_str() != "-")
        .collect();
    for (i, (fa, a)) in outputs.iter().enumerate() {
        for (fb, b) in &outputs[i + 1..] {
            if a == b || scfnet_base::files::same_file(a, b) {
                bail!(
                    "{fa} and {fb} both name {}: give each report its own file",
                    a.display()
                );
            }
        }
    }
    let existing: Vec<(&str, PathBuf)> = outputs
        .iter()
        .filter_map(|(f, p)| std::fs::canonicalize(p).ok().map(|c| (*f, c)))
        .collect();
    if existing.is_empty() {
        return Ok(());
    }
    for it in items {
        for input in [&it.pred, &it.gt] {
            let Ok(input) = std::fs::canonicalize(input) else {
                continue;
            };
            if let Some((flag, _)) = existing.iter().find(|(_, o)| *o == input) {
                bail!(
                    "{flag} {} is an input of this evaluation; write the report elsewhere",
                    input.display()
                );
            }
        }
    }
    Ok(())
}

/// Runs `scfnet eval`.
pub fn run(args: EvalArgs) -> Result<ExitCode> {
    let jobs = plan::jobs(&args)?;
    let pred_rule = NameRule {
        prefix: args.pred_prefix.clone(),
        suffix: args.pred_suffix.clone(),
    };
    let gt_rule = NameRule {
        prefix: args.gt_prefix.clone(),
        suffix: args.gt_suffix.clone(),
    };

    // 1. Pair every prediction with its GT; report every problem before scoring anything.
    let mut items = Vec::new();
    let mut folder_errors = Vec::new();
    let mut missing_pred = Vec::new();
    let mut missing_gt = Vec::new();
    let mut skipped = vec![0usize; jobs.len()];
    for (j, job) in jobs.iter().enumerate() {
        match match_folders(&job.pred_dir, &job.gt_dir, &pred_rule, &gt_rule) {
            Ok(m) => {
                skipped[j] += m.missing_pred.len();
                missing_pred.extend(m.missing_pred);
                missing_gt.extend(m.missing_gt);
                items.extend(m.pairs.into_iter().map(|(name, pred, gt)| Item {
                    job: j,
                    name,
                    pred,
                    gt,
                }));
            }
            Err(e) => folder_errors.push(format!("{} on {}: {e:#}", job.method, job.dataset)),
        }
    }
    if !folder_errors.is_empty() {
        bail!("cannot evaluate:\n  {}", folder_errors.join("\n  "));
    }
    list_files("GT masks without a prediction", &missing_pred);
    list_files("predictions without a GT mask", &missing_gt);
    let any_missing = !(missing_pred.is_empty() && missing_gt.is_empty());
    if any_missing && !args.allow_missing {
        bail!(
            "{} GT masks have no prediction and {} predictions have no GT (listed above); \
             fix the names (see --pred-prefix/--pred-suffix) or pass --allow-missing to score the rest",
            missing_pred.len(),
            missing_gt.len()
        );
    }

    check_outputs(&args, &items)?;

    // 2. Score every pair on all cores.
    let mode = match args.resize {
        ResizeArg::Bilinear => ResizeMode::Bilinear,
        ResizeArg::Refuse => ResizeMode::Refuse,
    };
    let pb = progress_bar(items.len());
    let scored = sod_metrics::score_parallel(
        &items,
        |it| {
            load_pair(&it.pred, &it.gt, mode)
                .map(|l| (l.pair, (l.pred_source, l.gt_source, l.resized_from)))
        },
        || pb.inc(1),
    );
    pb.finish_and_clear();

    // 3. Aggregate in dataset order (identical results whatever the thread count).
    let options = AccumulatorOptions {
        exclude_empty_gt: args.exclude_empty_gt,
    };
    let mut accs: Vec<Accumulator> = jobs
        .iter()
        .map(|_| Accumulator::with_options(options))
        .collect();
    let mut names: Vec<Vec<String>> = vec![Vec::new(); jobs.len()];
    let mut failures = Vec::new();
    let mut colour = Vec::new();
    let mut resized = 0usize;
    for (it, result) in items.iter().zip(scored) {
        match result {
            Ok((scores, (pred_src, gt_src, resized_from))) => {
                for (src, path) in [(pred_src, &it.pred), (gt_src, &it.gt)] {
                    if src == GraySource::ColourConverted {
                        colour.push(path.clone());
                    }
                }
                resized += usize::from(resized_from.is_some());
                if accs[it.job].push(&scores) {
                    names[it.job].push(it.name.clone());
                }
            }
            Err(e) => {
                skipped[it.job] += 1;
                failures.push(e.to_string());
            }
        }
    }
    if !colour.is_empty() {
        tracing::warn!(
            "{} colour images were converted to grey with BT.601 luma (tools disagree on colour maps; save greyscale):",
            colour.len()
        );
        list_files("colour images", &colour);
    }
    if resized > 0 {
        tracing::info!("{resized} predictions were resized to their GT size (bilinear)");
    }
    if !failures.is_empty() {
        eprintln!("unreadable or invalid pairs ({}):", failures.len());
        for f in failures.iter().take(LIST_LIMIT) {
            eprintln!("  {f}");
        }
        if failures.len() > LIST_LIMIT {
            eprintln!("  … and {} more", failures.len() - LIST_LIMIT);
        }
        if !args.allow_missing {
            bail!("{} pairs could not be scored (listed above); pass --allow-missing to score the rest", failures.len());
        }
    }

    let results: Vec<EvalResult> = jobs
        .iter()
        .zip(accs)
        .zip(names)
        .zip(skipped)
        .map(|(((job, acc), names), skipped)| EvalResult {
            method: job.method.clone(),
            dataset: job.dataset.clone(),
            scores: acc.finish(),
            skipped,
            per_image: names
                .into_iter()
                .zip(acc.images().iter().cloned())
                .collect(),
        })
        .collect();
    let unscored: Vec<String> = results
        .iter()
        .filter(|r| r.scores.images == 0)
        .map(|r| format!("{} on {}", r.method, r.dataset))
        .collect();
    if !unscored.is_empty() {
        // A table of NaN would look like a result; it is not one.
        bail!(
            "nothing could be scored for {} (every pair was missing or invalid, listed above); \
             no table written",
            unscored.join(", ")
        );
    }
    for r in &results {
        if r.scores.nan_s_measure > 0 {
            tracing::warn!(
                "{} on {}: {} images have a NaN S-measure (GT centroid on the last row/column), so Sm is NaN",
                r.method,
                r.dataset,
                r.scores.nan_s_measure
            );
        }
        if r.scores.empty_gt > 0 && !args.exclude_empty_gt {
            tracing::info!(
                "{} on {}: {} images have an empty GT (kept; --exclude-empty-gt leaves them out)",
                r.method,
                r.dataset,
                r.scores.empty_gt
            );
        }
    }

    // 4. Outputs.
    let outputs: [(&Option<PathBuf>, Renderer); 5] = [
        (&args.json, report::json),
        (&args.csv, report::csv),
        (&args.markdown, report::markdown),
        (&args.latex, report::latex),
        (&args.per_image, report::per_image_csv),
    ];
    let mut stdout_used = false;
    for (path, render) in outputs {
        if let Some(path) = path {
            write_atomic(path, render(&results).as_bytes())?;
            stdout_used |= path.as_os_str() == "-";
        }
    }
    if let Some(path) = &args.curves {
        write_atomic(path, curves::render(path, &results).as_bytes())?;
        stdout_used |= path.as_os_str() == "-";
    }
    if let Some(dir) = &args.plot {
        let written = plot::write_plots(dir, &results, args.plot_format)?;
        tracing::info!("wrote {} plots to {}", written.len(), dir.display());
    }
    if !args.quiet && !stdout_used {
        print!("{}", report::terminal(&results));
        println!("{}", report::CONVENTIONS);
    }
    Ok(ExitCode::SUCCESS)
}
