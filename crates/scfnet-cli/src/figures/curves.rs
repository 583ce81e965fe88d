//! Learning curves: the held-out MAE and the training loss of every run against its steps, read
//! from the runs' `log.jsonl` (one JSON object a line: training steps carry `step` and `loss`,
//! validations `validation`, `step` and `mae`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use plotters::coord::types::RangedCoordf64;

use super::{drawing_error, legend_mark, Figure};

/// What one run's `log.jsonl` says about its progress.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunLog {
    /// (step, loss) of every training step, in order.
    pub loss: Vec<(f64, f64)>,
    /// Held-out set → (steps done, MAE) of every validation.
    pub mae: BTreeMap<String, Vec<(f64, f64)>>,
}

impl RunLog {
    /// Reads a run's `log.jsonl` line by line (a long run's log may be large); lines that are
    /// neither steps nor validations are skipped, a line that is not JSON is an error naming the
    /// file and the line.
    pub fn read(path: &Path) -> Result<Self> {
        let file = scfnet_base::read::open_regular(path)
            .with_context(|| format!("reading {}", path.display()))?;
        Self::from_lines(std::io::BufReader::new(file))
            .with_context(|| format!("in {}", path.display()))
    }

    /// Parses the lines of a `log.jsonl`.
    fn from_lines(lines: impl std::io::BufRead) -> Result<Self> {
        let mut log = Self::default();
        for (i, line) in lines.lines().enumerate() {
            let line = line.with_context(|| format!("line {}", i + 1))?;
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value =
                serde_json::from_str(&line).with_context(|| format!("line {}: not JSON", i + 1))?;
            let num = |k: &str| v.get(k).and_then(serde_json::Value::as_f64);
            match (v.get("validation").and_then(|n| n.as_str()), num("step")) {
                (Some(set), Some(step)) => {
                    if let Some(mae) = num("mae").filter(|m| m.is_finite()) {
                        log.mae.entry(set.to_owned()).or_default().push((step, mae));
                    }
                }
                (None, Some(step)) => {
                    if let Some(loss) = num("loss").filter(|l| l.is_finite()) {
                        log.loss.push((step, loss));
                    }
                }
                _ => {}
            }
        }
        Ok(log)
    }

    /// The loss averaged over a sliding window of `window` steps (ending at each step).
    pub fn smoothed_loss(&self, window: usize) -> Vec<(f64, f64)> {
        let window = window.max(1);
        let mut sum = 0.0;
        let mut out = Vec::with_capacity(self.loss.len());
        for (i, &(step, loss)) in self.loss.iter().enumerate() {
            sum += loss;
            if i >= window {
                sum -= self.loss[i - window].1;
            }
            out.push((step, sum / (i + 1).min(window) as f64));
        }
        out
    }
}

/// The learning curves of several runs: held-out MAE (log scale) on the left, the smoothed
/// training loss on the right, one colour per run, one dash pattern per held-out set.
pub struct LearningCurves<'a> {
    /// Title above both panels.
    pub title: &'a str,
    /// (label, log) of every run, in legend order.
    pub runs: &'a [(String, RunLog)],
    /// Steps the loss is averaged over.
    pub smoothing: usize,
}

/// Canvas size of [`LearningCurves`].
pub const CURVES_SIZE: (u32, u32) = (1200, 520);

fn span(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// The legend of a panel, in its upper right corner.
fn legend<'a, DB: DrawingBackend + 'a>(chart: &mut Panel<'a, DB>) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(drawing_error::<DB::ErrorType>)
}

/// A panel's chart: steps against a value, both linear (the MAE is drawn as its log10).
type Panel<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

impl LearningCurves<'_> {
    fn max_step(&self) -> f64 {
        span(self.runs.iter().flat_map(|(_, r)| {
            r.loss
                .iter()
                .map(|p| p.0 + 1.0)
                .chain(r.mae.values().flatten().map(|p| p.0))
        }))
        .map_or(1.0, |(_, hi)| hi.max(1.0))
    }

    fn mae_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let err = drawing_error::<DB::ErrorType>;
        let (lo, hi) = span(
            self.runs
                .iter()
                .flat_map(|(_, r)| r.mae.values().flatten().map(|p| p.1)),
        )
        .unwrap_or((0.01, 1.0));
        let (lo, hi) = ((lo * 0.8).max(1e-4), (hi * 1.25).max(lo * 2.0).min(1.0));
        let mut chart = ChartBuilder::on(area)
            .caption("held-out MAE (lower is better)", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            // A logarithmic axis drawn as log10 values (labelled with the MAE itself), so every
            // decade gets labels.
            .build_cartesian_2d(0.0..self.max_step(), lo.log10()..hi.log10())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("training steps")
            .y_desc("MAE (log scale)")
            .y_labels(12)
            .y_label_formatter(&|v| format!("{:.3}", 10f64.powf(*v)))
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(err)?;
        for (i, (label, run)) in self.runs.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            for (j, (set, points)) in run.mae.iter().enumerate() {
                let name = if run.mae.len() > 1 {
                    format!("{label} ({set})")
                } else {
                    label.clone()
                };
                let style = colour.stroke_width(2);
                let series = points.iter().map(|&(x, y)| (x, y.log10()));
                // Dots mark the validations while they are few enough to tell apart.
                let dots = if points.len() <= 40 { 3 } else { 0 };
                let drawn = if j == 0 {
                    chart.draw_series(LineSeries::new(series, style).point_size(dots))
                } else {
                    chart.draw_series(DashedLineSeries::new(series, 6, 4, style))
                }
                .map_err(err)?;
                drawn.label(name).legend(legend_mark(colour));
            }
        }
        legend(&mut chart)
    }

    fn loss_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let err = drawing_error::<DB::ErrorType>;
        let smoothed: Vec<Vec<(f64, f64)>> = self
            .runs
            .iter()
            .map(|(_, r)| r.smoothed_loss(self.smoothing))
            .collect();
        let hi = span(smoothed.iter().flatten().map(|p| p.1)).map_or(1.0, |(_, hi)| hi * 1.05);
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!(
                    "training loss (each run's own objective, mean of {} steps)",
                    self.smoothing
                ),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..self.max_step(), 0.0..hi.max(1e-6))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("training steps")
            .y_desc("loss")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(err)?;
        for (i, ((label, _), points)) in self.runs.iter().zip(&smoothed).enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(err)?
                .label(label.clone())
                .legend(legend_mark(colour));
        }
        legend(&mut chart)
    }
}

impl Figure for LearningCurves<'_> {
    fn draw<DB: DrawingBackend>(&self, area: DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let err = drawing_error::<DB::ErrorType>;
        area.fill(&WHITE).map_err(err)?;
        let area = area.titled(self.title, ("sans-serif", 24)).map_err(err)?;
        let (left, right) = area.split_horizontally(area.dim_in_pixel().0 / 2);
        self.mae_panel(&left)?;
        self.loss_panel(&right)?;
        area.present().map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figures::{render, PlotFormat};

    const LOG: &str = r#"{"step":0,"loss":2.0,"epoch":0}
{"step":1,"loss":1.0,"epoch":0}
{"epoch":0,"step":2,"validation":"test-a","mae":0.3}
{"step":2,"loss":0.5,"epoch":1}
{"epoch":1,"step":3,"validation":"test-a","mae":0.1}
{"epoch":1,"step":3,"validation":"test-b","mae":0.2}
{"note":"resumed"}
"#;

    #[test]
    fn a_log_gives_its_steps_and_validations() {
        let log = RunLog::from_lines(LOG.as_bytes()).unwrap();
        assert_eq!(log.loss, vec![(0.0, 2.0), (1.0, 1.0), (2.0, 0.5)]);
        assert_eq!(log.mae["test-a"], vec![(2.0, 0.3), (3.0, 0.1)]);
        assert_eq!(log.mae["test-b"], vec![(3.0, 0.2)]);
        assert_eq!(
            log.smoothed_loss(2),
            vec![(0.0, 2.0), (1.0, 1.5), (2.0, 0.75)]
        );
        let err = format!(
            "{:#}",
            RunLog::from_lines(&b"{}\nnot json\n"[..]).unwrap_err()
        );
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn curves_render_as_png_and_svg() {
        let runs = vec![
            (
                "FS".to_string(),
                RunLog::from_lines(LOG.as_bytes()).unwrap(),
            ),
            ("KD".to_string(), RunLog::default()),
        ];
        let fig = LearningCurves {
            title: "demo",
            runs: &runs,
            smoothing: 2,
        };
        let png = render(&fig, CURVES_SIZE, PlotFormat::Png).unwrap();
        let img = image::load_from_memory(&png).unwrap();
        assert_eq!((img.width(), img.height()), CURVES_SIZE);
        // Not a blank canvas: the curves and text put dark pixels on it.
        let rgb = img.to_rgb8();
        let dark = rgb
            .pixels()
            .filter(|p| p.0.iter().all(|&c| c < 100))
            .count();
        assert!(dark > 1000, "{dark} dark pixels");
        let svg = String::from_utf8(render(&fig, CURVES_SIZE, PlotFormat::Svg).unwrap()).unwrap();
        assert!(svg.contains("held-out MAE") && svg.contains("FS"));
    }
}
