//! A synthetic salient-object dataset: textured, gradient backgrounds with one to three foreground
//! objects of varied shape (ellipses, rounded rectangles, stars, irregular blobs), colour and size,
//! with soft, anti-aliased edges. Written in the benchmark layout (`image/`, `mask/`, `train.txt`,
//! `test.txt`), it is the embedded default data of the demo and the tests: no download needed.

use std::f64::consts::PI;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{DataError, Result};
use crate::rng::Rng;

/// Settings of the generator.
#[derive(Clone, Debug)]
pub struct SynthConfig {
    /// Number of images.
    pub count: usize,
    /// Seed: the same seed gives the same files.
    pub seed: u64,
    /// Smallest and largest image side (each side drawn independently).
    pub side: (usize, usize),
    /// Fraction of the images listed in `test.txt` (the rest in `train.txt`).
    pub test_fraction: f64,
    /// Most distractors a scene may hold (0: none, the plain scenes). Distractors are drawn
    /// behind the salient objects and are not in the mask: muted shapes in the background's
    /// tones, small saturated specks, and saturated shapes cut by the image border, so that
    /// "bright and saturated" alone no longer finds the salient object (see [`scene_with`]).
    pub clutter: usize,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            count: 200,
            seed: 0,
            side: (160, 256),
            test_fraction: 0.2,
            clutter: 0,
        }
    }
}

/// One generated scene: RGB pixels and the soft mask, `width × height`.
#[derive(Clone, Debug)]
pub struct SynthScene {
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
    /// RGB, row-major, 3 bytes a pixel.
    pub rgb: Vec<u8>,
    /// Mask, 0–255, soft on the boundary.
    pub mask: Vec<u8>,
}

#[derive(Clone, Copy, Debug)]
enum Shape {
    Ellipse,
    RoundedRect { corner: f64 },
    Star { points: usize, depth: f64 },
    Blob { phases: [f64; 3], amps: [f64; 3] },
}

/// A foreground object: a shape in a rotated frame, with a colour and a stripe pattern.
#[derive(Clone, Copy, Debug)]
struct Object {
    shape: Shape,
    cx: f64,
    cy: f64,
    rx: f64,
    ry: f64,
    angle: f64,
    colour: [f64; 3],
    stripes: f64,
}

impl Object {
    fn random(rng: &mut Rng, w: f64, h: f64, scale: f64) -> Self {
        let s = w.min(h);
        let shape = match rng.below(4) {
            0 => Shape::Ellipse,
            1 => Shape::RoundedRect {
                corner: rng.uniform(0.1, 0.5),
            },
            2 => Shape::Star {
                points: 4 + rng.below(4),
                depth: rng.uniform(0.2, 0.45),
            },
            _ => Shape::Blob {
                phases: [
                    rng.uniform(0.0, 2.0 * PI),
                    rng.uniform(0.0, 2.0 * PI),
                    rng.uniform(0.0, 2.0 * PI),
                ],
                amps: [
                    rng.uniform(0.05, 0.2),
                    rng.uniform(0.05, 0.15),
                    rng.uniform(0.0, 0.1),
                ],
            },
        };
        // Saturated, bright colours: one channel high, one low.
        let hue = rng.uniform(0.0, 1.0);
        let colour = hsv(hue, rng.uniform(0.6, 1.0), rng.uniform(0.7, 1.0));
        Self {
            shape,
            cx: rng.uniform(0.25, 0.75) * w,
            cy: rng.uniform(0.25, 0.75) * h,
            rx: rng.uniform(0.12, 0.3) * s * scale,
            ry: rng.uniform(0.12, 0.3) * s * scale,
            angle: rng.uniform(0.0, PI),
            colour,
            stripes: rng.uniform(0.0, 0.35),
        }
    }

    /// Approximate signed distance in pixels (negative inside).
    fn distance(&self, x: f64, y: f64) -> f64 {
        let (dx, dy) = (x - self.cx, y - self.cy);
        let (c, s) = (self.angle.cos(), self.angle.sin());
        let (u, v) = (c * dx + s * dy, -s * dx + c * dy);
        let (nu, nv) = (u / self.rx, v / self.ry);
        let r = (nu * nu + nv * nv).sqrt();
        let theta = nv.atan2(nu);
        let scale = self.rx.min(self.ry);
        let boundary = match self.shape {
            Shape::Ellipse => 1.0,
            Shape::RoundedRect { corner } => {
                // Superellipse: exponent from the corner roundness (2 = ellipse, large = box).
                let p = 2.0 + 8.0 * (1.0 - corner);
                let (ct, st) = (theta.cos().abs(), theta.sin().abs());
                (ct.powf(p) + st.powf(p)).powf(-1.0 / p)
            }
            Shape::Star { points, depth } => {
                1.0 - depth * (0.5 + 0.5 * (points as f64 * theta).cos())
            }
            Shape::Blob { phases, amps } => {
                1.0 + amps[0] * (2.0 * theta + phases[0]).sin()
                    + amps[1] * (3.0 * theta + phases[1]).sin()
                    + amps[2] * (5.0 * theta + phases[2]).sin()
            }
        };
        (r - boundary) * scale
    }
}

/// HSV (all in `[0, 1]`) to RGB in `[0, 255]`.
fn hsv(h: f64, s: f64, v: f64) -> [f64; 3] {
    let i = (h * 6.0).floor();
    let f = h * 6.0 - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - f * s), v * (1.0 - (1.0 - f) * s));
    let rgb = match i as i64 % 6 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    };
    rgb.map(|c| c * 255.0)
}

/// Scene number `index` of the stream `seed`, without distractors.
pub fn scene(seed: u64, index: usize, side: (usize, usize)) -> SynthScene {
    scene_with(seed, index, side, 0)
}

/// Up to `clutter` distractors of scene `index` (their own random stream, so that the salient
/// objects and the background are those of the plain scene): not salient, never in the mask.
fn distractors(seed: u64, index: usize, w: f64, h: f64, clutter: usize) -> Vec<Object> {
    let mut rng = Rng::stream(seed, &[0x434c_5554, index as u64]);
    let n = rng.below(clutter + 1);
    let s = w.min(h);
    (0..n)
        .map(|_| {
            let mut o = Object::random(&mut rng, w, h, 1.0);
            match rng.below(3) {
                // A shape in the background's muted tones.
                0 => {
                    o.colour = hsv(rng.unit(), rng.uniform(0.05, 0.3), rng.uniform(0.3, 0.7));
                    o.cx = rng.uniform(0.1, 0.9) * w;
                    o.cy = rng.uniform(0.1, 0.9) * h;
                }
                // A small saturated speck.
                1 => {
                    o.rx = rng.uniform(0.03, 0.06) * s;
                    o.ry = rng.uniform(0.03, 0.06) * s;
                    o.cx = rng.uniform(0.05, 0.95) * w;
                    o.cy = rng.uniform(0.05, 0.95) * h;
                }
                // A saturated shape centred on the border, half outside the image.
                _ => match rng.below(4) {
                    0 => o.cx = 0.0,
                    1 => o.cx = w,
                    2 => o.cy = 0.0,
                    _ => o.cy = h,
                },
            }
            o
        })
        .collect()
}

/// Scene number `index` of the stream `seed` with up to `clutter` distractors (0: [`scene`]).
pub fn scene_with(seed: u64, index: usize, side: (usize, usize), clutter: usize) -> SynthScene {
    let mut rng = Rng::stream(seed, &[0x5953_4e54, index as u64]);
    let span = side.1.saturating_sub(side.0) + 1;
    let width = side.0 + rng.below(span);
    let height = side.0 + rng.below(span);
    let (w, h) = (width as f64, height as f64);
    // Background: a muted two-colour gradient, a sinusoidal texture and grain.
    let base = hsv(rng.unit(), rng.uniform(0.05, 0.35), rng.uniform(0.25, 0.6));
    let other = hsv(rng.unit(), rng.uniform(0.05, 0.35), rng.uniform(0.25, 0.6));
    let (fx, fy) = (rng.uniform(0.03, 0.25), rng.uniform(0.03, 0.25));
    let texture = rng.uniform(5.0, 25.0);
    let tilt = rng.uniform(0.0, PI);
    let n = 1 + rng.below(3);
    let scale = if n == 1 { 1.2 } else { 0.85 };
    let objects: Vec<Object> = (0..n)
        .map(|_| Object::random(&mut rng, w, h, scale))
        .collect();
    let softness = rng.uniform(0.6, 2.0); // edge width in pixels
    let clutter = if clutter == 0 {
        Vec::new()
    } else {
        distractors(seed, index, w, h, clutter)
    };
    let mut grain = Rng::stream(seed, &[0x4752_4149, index as u64]);
    let mut rgb = Vec::with_capacity(width * height * 3);
    let mut mask = Vec::with_capacity(width * height);
    for y in 0..height {
        for x in 0..width {
            let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
            let g = ((px * tilt.cos() + py * tilt.sin()) / (w + h)).clamp(0.0, 1.0);
            let t = texture * ((px * fx).sin() * (py * fy).cos());
            let mut colour = [0.0; 3];
            for c in 0..3 {
                colour[c] = base[c] * (1.0 - g) + other[c] * g + t + 8.0 * (grain.unit() - 0.5);
            }
            // Distractors lie behind the salient objects and stay out of the mask.
            for o in &clutter {
                let a = (0.5 - o.distance(px, py) / softness).clamp(0.0, 1.0);
                if a > 0.0 {
                    for (v, oc) in colour.iter_mut().zip(o.colour) {
                        *v = *v * (1.0 - a) + oc * a;
                    }
                }
            }
            // Objects later in the list are in front.
            let mut alpha_total = 0.0f64;
            for o in &objects {
                let a = (0.5 - o.distance(px, py) / softness).clamp(0.0, 1.0);
                if a > 0.0 {
                    let stripe = 1.0 - o.stripes * (0.5 + 0.5 * ((px + py) * 0.15).sin());
                    for (v, oc) in colour.iter_mut().zip(o.colour) {
                        *v = *v * (1.0 - a) + oc * stripe * a;
                    }
                    alpha_total = alpha_total + a - alpha_total * a;
                }
            }
            rgb.extend(colour.iter().map(|v| v.round().clamp(0.0, 255.0) as u8));
            mask.push((alpha_total * 255.0).round() as u8);
        }
    }
    SynthScene {
        width,
        height,
        rgb,
        mask,
    }
}

/// What [`generate`] wrote.
#[derive(Clone, Debug)]
pub struct SynthSummary {
    /// The dataset root.
    pub root: PathBuf,
    /// Stems listed in `train.txt`.
    pub train: Vec<String>,
    /// Stems listed in `test.txt`.
    pub test: Vec<String>,
}

fn write_png_gray(path: &Path, w: usize, h: usize, data: Vec<u8>) -> Result<()> {
    let img = image::GrayImage::from_raw(w as u32, h as u32, data).expect("buffer size");
    save_atomic(path, |tmp| {
        img.save_with_format(tmp, image::ImageFormat::Png)
    })
}

fn write_jpeg(path: &Path, w: usize, h: usize, data: Vec<u8>) -> Result<()> {
    let img = image::RgbImage::from_raw(w as u32, h as u32, data).expect("buffer size");
    save_atomic(path, |tmp| {
        let file = std::fs::File::create(tmp)?;
        let mut enc =
            image::codecs::jpeg::JpegEncoder::new_with_quality(std::io::BufWriter::new(file), 95);
        enc.encode_image(&img)
    })
}

/// Writes through [`scfnet_base::files::write_with`] (temporary, fsync, rename).
fn save_atomic(
    path: &Path,
    write: impl FnOnce(&Path) -> std::result::Result<(), image::ImageError>,
) -> Result<()> {
    scfnet_base::files::write_with(path, write).map_err(|e| DataError::Write {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    scfnet_base::files::write_bytes(path, text.as_bytes()).map_err(|e| DataError::io(path, e))
}

/// Largest side of a synthetic image.
pub const MAX_SYNTH_SIDE: usize = 4096;

/// Most distractors a scene may be asked for ([`SynthConfig::clutter`]).
pub const MAX_CLUTTER: usize = 64;

/// Generates `config.count` scenes into `root` (`image/NNNNN.jpg`, `mask/NNNNN.png`, `train.txt`,
/// `test.txt`), in parallel, calling `progress` after each file pair.
pub fn generate(
    root: impl AsRef<Path>,
    config: &SynthConfig,
    progress: impl Fn() + Sync,
) -> Result<SynthSummary> {
    let root = root.as_ref();
    if !(0.0..=1.0).contains(&config.test_fraction) {
        return Err(DataError::Config(format!(
            "test fraction must be in [0, 1], got {}",
            config.test_fraction
        )));
    }
    if config.side.0 < 32 || config.side.0 > config.side.1 || config.side.1 > MAX_SYNTH_SIDE {
        return Err(DataError::Config(format!(
            "image sides must satisfy 32 <= min <= max <= {MAX_SYNTH_SIDE}, got {:?}",
            config.side
        )));
    }
    if config.clutter > MAX_CLUTTER {
        return Err(DataError::Config(format!(
            "at most {MAX_CLUTTER} distractors per scene, got {}",
            config.clutter
        )));
    }
    // A data set is written whole into a place that holds none: never mixed with (or written
    // over) files already there.
    let taken: Vec<&str> = ["image", "mask", "train.txt", "test.txt"]
        .into_iter()
        .filter(|n| {
            let p = root.join(n);
            std::fs::read_dir(&p).map_or(p.exists(), |mut d| d.next().is_some())
        })
        .collect();
    if !taken.is_empty() {
        return Err(DataError::Layout {
            path: root.to_owned(),
            message: format!(
                "already holds {} (a data set); synthetic data goes into a new or empty folder",
                taken.join(", ")
            ),
        });
    }
    // An empty `image/` or `mask/` (or a link to an empty folder) may already stand there.
    let existed = ["image", "mask"].map(|d| root.join(d).exists());
    let written = write_all(root, config, progress);
    if written.is_err() {
        // A data set appears whole or not at all: what this call wrote is removed again (the
        // place held none of it before), so a full disk leaves no images without lists. A
        // folder that was there stays, emptied of what was written into it.
        for (dir, existed) in ["image", "mask"].into_iter().zip(existed) {
            let dir = root.join(dir);
            if !existed {
                let _ = std::fs::remove_dir_all(&dir);
            } else if let Ok(entries) = std::fs::read_dir(&dir) {
                for entry in entries.flatten() {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        for list in ["train.txt", "test.txt"] {
            let _ = std::fs::remove_file(root.join(list));
        }
    }
    written
}

/// The files of [`generate`], into a place checked to hold none of them.
fn write_all(
    root: &Path,
    config: &SynthConfig,
    progress: impl Fn() + Sync,
) -> Result<SynthSummary> {
    for dir in ["image", "mask"] {
        let d = root.join(dir);
        std::fs::create_dir_all(&d).map_err(|e| DataError::io(&d, e))?;
    }
    let stems: Vec<String> = (0..config.count).map(|i| format!("{i:05}")).collect();
    stems
        .par_iter()
        .enumerate()
        .try_for_each(|(i, stem)| -> Result<()> {
            let s = scene_with(config.seed, i, config.side, config.clutter);
            write_jpeg(
                &root.join("image").join(format!("{stem}.jpg")),
                s.width,
                s.height,
                s.rgb,
            )?;
            write_png_gray(
                &root.join("mask").join(format!("{stem}.png")),
                s.width,
                s.height,
                s.mask,
            )?;
            progress();
            Ok(())
        })?;
    let n_test = (config.count as f64 * config.test_fraction).round() as usize;
    let (train, test) = stems.split_at(config.count - n_test);
    write_text(&root.join("train.txt"), &(train.join("\n") + "\n"))?;
    write_text(&root.join("test.txt"), &(test.join("\n") + "\n"))?;
    Ok(SynthSummary {
        root: root.to_owned(),
        train: train.to_vec(),
        test: test.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clutter_changes_pixels_but_never_the_mask() {
        let side = (64, 96);
        let mut changed = 0;
        for index in 0..16 {
            let plain = scene(7, index, side);
            assert_eq!(
                scene_with(7, index, side, 0).rgb,
                plain.rgb,
                "clutter 0 is the plain scene"
            );
            let busy = scene_with(7, index, side, 4);
            assert_eq!((busy.width, busy.height), (plain.width, plain.height));
            assert_eq!(busy.mask, plain.mask, "distractors are not salient");
            // Distractors lie behind the objects: inside the mask the pixels are the plain ones.
            let mut outside_diff = 0;
            for (i, &m) in plain.mask.iter().enumerate() {
                let same = busy.rgb[3 * i..3 * i + 3] == plain.rgb[3 * i..3 * i + 3];
                if m == 255 {
                    assert!(same, "scene {index}: pixel {i} inside an object changed");
                } else if !same {
                    outside_diff += 1;
                }
            }
            changed += usize::from(outside_diff > 0);
        }
        // Up to four distractors a scene (none in about a fifth of them).
        assert!(changed >= 8, "only {changed} of 16 scenes got distractors");
    }
}

#[cfg(test)]
mod limits {
    use super::*;

    #[test]
    fn too_many_distractors_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let config = SynthConfig {
            count: 2,
            clutter: MAX_CLUTTER + 1,
            ..SynthConfig::default()
        };
        let err = generate(dir.path(), &config, || {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 64 distractors"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
