//! PR and F-threshold plots with `plotters` (PNG or SVG).

use std::path::Path;

use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::args::PlotFormat;
use super::report::EvalResult;
use crate::atomic::write_atomic;
use crate::figures::{drawing_error, legend_mark, render, Figure};

const SIZE: (u32, u32) = (800, 600);

/// Which curve a plot shows.
#[derive(Clone, Copy)]
enum Kind {
    /// Precision against recall.
    Pr,
    /// F-measure against threshold.
    FThreshold,
}

fn draw<DB: DrawingBackend>(
    area: DrawingArea<DB, Shift>,
    dataset: &str,
    kind: Kind,
    results: &[&EvalResult],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = drawing_error::<DB::ErrorType>;
    area.fill(&WHITE).map_err(err)?;
    let (title, x_label, y_label, x_max) = match kind {
        Kind::Pr => (
            format!("{dataset}: precision-recall"),
            "recall",
            "precision",
            1.0,
        ),
        Kind::FThreshold => (
            format!("{dataset}: F-measure (beta^2 = 0.3) by threshold"),
            "threshold",
            "F-measure",
            255.0,
        ),
    };
    let mut chart = ChartBuilder::on(&area)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max, 0.0..1.0)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    for (i, r) in results.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let c = &r.scores.curves;
        let points: Vec<(f64, f64)> = match kind {
            Kind::Pr => c
                .recall
                .iter()
                .zip(&c.precision)
                .map(|(&x, &y)| (x, y))
                .collect(),
            Kind::FThreshold => c
                .f_measure
                .iter()
                .enumerate()
                .map(|(t, &f)| (t as f64, f))
                .collect(),
        };
        chart
            .draw_series(LineSeries::new(
                points
                    .into_iter()
                    .filter(|(x, y)| x.is_finite() && y.is_finite()),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(r.method.clone())
            .legend(legend_mark(color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .position(match kind {
            Kind::Pr => SeriesLabelPosition::LowerLeft,
            Kind::FThreshold => SeriesLabelPosition::UpperRight,
        })
        .draw()
        .map_err(err)?;
    area.present().map_err(err)?;
    Ok(())
}

/// One dataset's plot of one kind.
struct Plot<'a> {
    dataset: &'a str,
    kind: Kind,
    results: &'a [&'a EvalResult],
}

impl Figure for Plot<'_> {
    fn draw<DB: DrawingBackend>(&self, area: DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        draw(area, self.dataset, self.kind, self.results)
    }
}

/// File-name-safe version of a dataset name.
fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes `DATASET_pr.EXT` and `DATASET_f.EXT` for every dataset into `dir`; returns the paths.
pub fn write_plots(
    dir: &Path,
    results: &[EvalResult],
    format: PlotFormat,
) -> Result<Vec<std::path::PathBuf>> {
    let ext = match format {
        PlotFormat::Png => "png",
        PlotFormat::Svg => "svg",
    };
    let mut datasets: Vec<&str> = Vec::new();
    for r in results {
        if !datasets.contains(&r.dataset.as_str()) {
            datasets.push(&r.dataset);
        }
    }
    let mut written = Vec::new();
    for d in datasets {
        let subset: Vec<&EvalResult> = results.iter().filter(|r| r.dataset == d).collect();
        for (kind, tag) in [(Kind::Pr, "pr"), (Kind::FThreshold, "f")] {
            let path = dir.join(format!("{}_{tag}.{ext}", file_stem(d)));
            let plot = Plot {
                dataset: d,
                kind,
                results: &subset,
            };
            let bytes =
                render(&plot, SIZE, format).with_context(|| format!("{}: plot", path.display()))?;
            write_atomic(&path, &bytes)?;
            written.push(path);
        }
    }
    Ok(written)
}
