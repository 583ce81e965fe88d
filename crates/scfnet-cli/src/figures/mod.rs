//! Figures drawn with `plotters` for the reports of `scfnet eval`, `scfnet demo` and the sweep:
//! the embedded font, rendering to PNG or SVG, learning curves from `log.jsonl` files, and a grid
//! of example images beside their ground truth and each network's map.

pub mod curves;
pub mod grid;

use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::sync::Once;

/// Image format of a figure.
#[derive(Clone, Copy, Debug, clap::ValueEnum, PartialEq, Eq)]
pub enum PlotFormat {
    /// PNG raster images.
    Png,
    /// SVG vector images.
    Svg,
}

/// DejaVu Sans subset to printable ASCII (licence in `assets/`): plots need no system fonts.
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans-ascii.ttf");

/// Registers the embedded font as `sans-serif` (once per process).
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("embedded font is a valid TrueType file"));
    });
}

/// A plotters drawing error as an `anyhow` error.
pub fn drawing_error<E: std::error::Error + Send + Sync>(
    e: DrawingAreaErrorKind<E>,
) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

/// Something that draws itself on any plotters backend.
pub trait Figure {
    /// Draws onto `area` (the whole canvas).
    fn draw<DB: DrawingBackend>(&self, area: DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static;
}

/// The bytes of `figure` drawn on a `size` canvas (width, height) in `format`.
pub fn render(figure: &impl Figure, size: (u32, u32), format: PlotFormat) -> Result<Vec<u8>> {
    register_font();
    match format {
        PlotFormat::Svg => {
            let mut svg = String::new();
            figure.draw(SVGBackend::with_string(&mut svg, size).into_drawing_area())?;
            Ok(svg.into_bytes())
        }
        PlotFormat::Png => {
            let mut rgb = vec![0u8; (size.0 * size.1 * 3) as usize];
            figure.draw(BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area())?;
            png_of_rgb(size, rgb)
        }
    }
}

/// Draws `figure` as a PNG of `size` into `path` (atomically).
pub fn write_png(path: &std::path::Path, figure: &impl Figure, size: (u32, u32)) -> Result<()> {
    crate::atomic::write_atomic(path, &render(figure, size, PlotFormat::Png)?)
}

/// The mark beside a series' name in a legend: a short line of its colour, 2 px wide.
pub fn legend_mark(colour: RGBAColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
}

/// PNG bytes of an RGB buffer of `size` (width, height).
pub fn png_of_rgb(size: (u32, u32), rgb: Vec<u8>) -> Result<Vec<u8>> {
    let img = image::RgbImage::from_raw(size.0, size.1, rgb).context("figure buffer size")?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .context("encoding PNG")?;
    Ok(png)
}
