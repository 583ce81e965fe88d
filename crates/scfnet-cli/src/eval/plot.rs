//! PR and F-threshold plots with `plotters` (PNG or SVG).

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::args::PlotFormat;
use super::report::EvalResult;
use crate::atomic::write_atomic;

/// DejaVu Sans subset to printable ASCII (licence in `assets/`): plots need no system fonts.
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans-ascii.ttf");
const SIZE: (u32, u32) = (800, 600);

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("embedded font is a valid TrueType file"));
    });
}

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
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing failed: {e:?}");
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
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
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

fn render(
    dataset: &str,
    kind: Kind,
    results: &[&EvalResult],
    format: PlotFormat,
) -> Result<Vec<u8>> {
    match format {
        PlotFormat::Svg => {
            let mut svg = String::new();
            draw(
                SVGBackend::with_string(&mut svg, SIZE).into_drawing_area(),
                dataset,
                kind,
                results,
            )?;
            Ok(svg.into_bytes())
        }
        PlotFormat::Png => {
            let mut rgb = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
            draw(
                BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area(),
                dataset,
                kind,
                results,
            )?;
            let img = image::RgbImage::from_raw(SIZE.0, SIZE.1, rgb).context("plot buffer size")?;
            let mut png = Vec::new();
            img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .context("encoding PNG")?;
            Ok(png)
        }
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
    register_font();
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
            let bytes = render(d, kind, &subset, format)
                .with_context(|| format!("{}: plot", path.display()))?;
            write_atomic(&path, &bytes)?;
            written.push(path);
        }
    }
    Ok(written)
}
