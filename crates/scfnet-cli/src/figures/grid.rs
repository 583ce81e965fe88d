//! A grid of examples: one row per held-out image, its columns the image, the ground truth and
//! each network's map of it, titled at the top. PNG only (it is a picture of pictures).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use image::imageops::FilterType;
use image::RgbImage;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{drawing_error, png_of_rgb, register_font};

/// One row of the grid: an image and its ground-truth mask.
#[derive(Clone, Debug)]
pub struct Example {
    /// The image file.
    pub image: PathBuf,
    /// Its mask.
    pub mask: PathBuf,
}

/// One map column: a title and the folder holding `STEM.png` for every example.
#[derive(Clone, Debug)]
pub struct MapColumn {
    /// Column title.
    pub title: String,
    /// Folder of the maps.
    pub maps: PathBuf,
}

/// Side of a cell in pixels.
const CELL: u32 = 150;
/// Gap between cells.
const GAP: u32 = 6;
/// Height of the title row.
const HEADER: u32 = 30;
/// Background of the canvas and of a cell's margins.
const BACKGROUND: [u8; 3] = [255, 255, 255];
const MARGIN: [u8; 3] = [235, 235, 235];

fn stem(path: &Path) -> Result<&str> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .with_context(|| format!("{}: no file name", path.display()))
}

/// The file scaled to fit a cell (aspect kept), or `None` when it does not exist.
fn thumbnail(path: &Path) -> Result<Option<RgbImage>> {
    if !path.exists() {
        return Ok(None);
    }
    let img = image::ImageReader::open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("reading {}", path.display()))?
        .decode()
        .with_context(|| format!("decoding {}", path.display()))?
        .to_rgb8();
    let scale = (CELL as f64 / img.width() as f64).min(CELL as f64 / img.height() as f64);
    let w = ((img.width() as f64 * scale).round() as u32).clamp(1, CELL);
    let h = ((img.height() as f64 * scale).round() as u32).clamp(1, CELL);
    Ok(Some(image::imageops::resize(
        &img,
        w,
        h,
        FilterType::Triangle,
    )))
}

/// PNG bytes of the grid of `examples` (rows) by image, ground truth and `columns`. A map that
/// is missing leaves its cell blank with "no map" in it.
pub fn example_grid(examples: &[Example], columns: &[MapColumn]) -> Result<Vec<u8>> {
    register_font();
    let n_cols = 2 + columns.len() as u32;
    let n_rows = examples.len() as u32;
    let size = (
        n_cols * CELL + (n_cols + 1) * GAP,
        HEADER + n_rows * CELL + (n_rows + 1) * GAP,
    );
    let mut canvas = RgbImage::from_pixel(size.0, size.1, image::Rgb(BACKGROUND));
    let mut missing = Vec::new();
    for (row, ex) in examples.iter().enumerate() {
        let stem = stem(&ex.image)?;
        let mut files = vec![ex.image.clone(), ex.mask.clone()];
        files.extend(columns.iter().map(|c| c.maps.join(format!("{stem}.png"))));
        for (col, file) in files.iter().enumerate() {
            let x0 = GAP + col as u32 * (CELL + GAP);
            let y0 = HEADER + GAP + row as u32 * (CELL + GAP);
            for y in 0..CELL {
                for x in 0..CELL {
                    canvas.put_pixel(x0 + x, y0 + y, image::Rgb(MARGIN));
                }
            }
            match thumbnail(file)? {
                Some(t) => {
                    let (dx, dy) = ((CELL - t.width()) / 2, (CELL - t.height()) / 2);
                    image::imageops::replace(&mut canvas, &t, (x0 + dx) as i64, (y0 + dy) as i64);
                }
                None => missing.push((x0 + CELL / 2, y0 + CELL / 2)),
            }
        }
    }
    let mut titles = vec!["image".to_string(), "ground truth".to_string()];
    titles.extend(columns.iter().map(|c| c.title.clone()));
    let mut rgb = canvas.into_raw();
    {
        let area = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        let err = drawing_error;
        let centred = Pos::new(HPos::Center, VPos::Center);
        let style = TextStyle::from(("sans-serif", 13).into_font()).pos(centred);
        for (col, title) in titles.iter().enumerate() {
            let x = GAP + col as u32 * (CELL + GAP) + CELL / 2;
            area.draw(&Text::new(
                title.as_str(),
                (x as i32, (HEADER / 2 + GAP / 2) as i32),
                style.clone(),
            ))
            .map_err(err)?;
        }
        for (x, y) in missing {
            area.draw(&Text::new("no map", (x as i32, y as i32), style.clone()))
                .map_err(err)?;
        }
        area.present().map_err(err)?;
    }
    png_of_rgb(size, rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_holds_every_picture_where_it_belongs() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("a.jpg");
        let mask = dir.path().join("a_mask.png");
        image::RgbImage::from_pixel(60, 30, image::Rgb([200, 20, 20]))
            .save(&img)
            .unwrap();
        image::GrayImage::from_pixel(60, 30, image::Luma([255]))
            .save(&mask)
            .unwrap();
        let maps = dir.path().join("net");
        std::fs::create_dir_all(&maps).unwrap();
        image::GrayImage::from_pixel(60, 30, image::Luma([0]))
            .save(maps.join("a.png"))
            .unwrap();
        let columns = [
            MapColumn {
                title: "net".into(),
                maps: maps.clone(),
            },
            MapColumn {
                title: "absent".into(),
                maps: dir.path().join("nothing"),
            },
        ];
        let png = example_grid(&[Example { image: img, mask }], &columns).unwrap();
        let grid = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(grid.width(), 4 * CELL + 5 * GAP);
        assert_eq!(grid.height(), HEADER + CELL + 2 * GAP);
        // Each cell's centre: the image is red, the mask white, the map black, the absent map's
        // cell keeps its grey margin colour except for its text.
        let centre = |col: u32| {
            grid.get_pixel(
                GAP + col * (CELL + GAP) + CELL / 2,
                HEADER + GAP + CELL / 2 - 20,
            )
            .0
        };
        let red = centre(0);
        assert!(red[0] > 150 && red[1] < 80 && red[2] < 80, "{red:?}");
        assert_eq!(centre(1), [255, 255, 255]);
        assert_eq!(centre(2), [0, 0, 0]);
        assert_eq!(centre(3), MARGIN);
    }
}
