//! `cargo xtask demo-data`: the small demo set of `data/demo`.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::synthetic;

/// Arguments of `demo-data`.
#[derive(clap::Args)]
pub struct Args {
    /// Output folder.
    #[arg(long, default_value = "data/demo")]
    out: PathBuf,
    /// Number of images.
    #[arg(long, default_value_t = 12)]
    n: usize,
}

/// Methods of the demo set and their quality.
const METHODS: [(&str, f64); 2] = [("sharp", 0.85), ("blurry", 0.45)];

fn save(path: &PathBuf, w: usize, h: usize, data: Vec<u8>) -> Result<()> {
    std::fs::create_dir_all(path.parent().unwrap())?;
    image::GrayImage::from_raw(w as u32, h as u32, data)
        .context("buffer size")?
        .save(path)
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// Writes `OUT/image/NNNN.jpg` (RGB scenes), `OUT/gt/NNNN.png` and `OUT/pred/METHOD/NNNN.png`.
pub fn run(args: Args) -> Result<()> {
    for i in 0..args.n {
        let (w, h) = (160 + 8 * (i % 5), 120 + 6 * (i % 4));
        let name = format!("{i:04}.png");
        for (m, (method, quality)) in METHODS.iter().enumerate() {
            let pair = synthetic::pair(1000 + i as u64, w, h, *quality);
            if m == 0 {
                let rgb = synthetic::rgb_scene(1000 + i as u64, w, h, &pair.gt);
                let path = args.out.join("image").join(format!("{i:04}.jpg"));
                std::fs::create_dir_all(path.parent().unwrap())?;
                image::RgbImage::from_raw(w as u32, h as u32, rgb)
                    .context("buffer size")?
                    .save(&path)
                    .with_context(|| format!("{}: cannot write", path.display()))?;
                save(&args.out.join("gt").join(&name), w, h, pair.gt)?;
            }
            save(
                &args.out.join("pred").join(method).join(&name),
                w,
                h,
                pair.pred,
            )?;
        }
    }
    println!(
        "wrote {} images and {} methods to {}",
        args.n,
        METHODS.len(),
        args.out.display()
    );
    Ok(())
}
