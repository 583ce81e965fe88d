//! Pixel operations on float images, with OpenCV's conventions where the original code used
//! OpenCV: bilinear resize as `cv2.INTER_LINEAR` (half-pixel centres, no anti-aliasing) and
//! Gaussian blur as `cv2.GaussianBlur(img, (k, k), 0)` (reflect-101 border).

use std::path::Path;

use crate::error::{DataError, Result};

/// A float image, row-major, channels interleaved: `(H, W, C)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Planar {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Channels (3 for RGB, 1 for a mask).
    pub channels: usize,
    /// `height · width · channels` values.
    pub data: Vec<f32>,
}

impl Planar {
    /// An image of zeros.
    pub fn zeros(width: usize, height: usize, channels: usize) -> Self {
        Self {
            width,
            height,
            channels,
            data: vec![0.0; width * height * channels],
        }
    }

    /// Wraps 8-bit interleaved pixels as floats in `[0, 255]`.
    pub fn from_u8(width: usize, height: usize, channels: usize, bytes: &[u8]) -> Self {
        Self {
            width,
            height,
            channels,
            data: bytes.iter().map(|&b| b as f32).collect(),
        }
    }

    /// Index in `data` of pixel `(y, x)`'s first channel (the tests' plain references).
    #[cfg(test)]
    fn at(&self, y: usize, x: usize) -> usize {
        (y * self.width + x) * self.channels
    }
}

pub use scfnet_base::pixels::{max_pixels, DEFAULT_MAX_PIXELS};

/// Whether a JPEG file's end-of-image marker (`FF D9`) is in its last 4 KiB: a file cut short
/// has none (a stuffed scan never contains `FF D9`), and the decoder would fill the missing
/// rows with grey without a word.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

/// Decodes an image file, the one decoder of the workspace (training, validation, `scfnet
/// predict`). Refused with an error naming the file: unreadable or unknown formats, images
/// larger than [`max_pixels`] (checked from the header, before decoding), truncated JPEGs, and
/// empty images.
pub fn decode_image(path: &Path) -> Result<image::DynamicImage> {
    let decode_err = |message: String| DataError::Decode {
        path: path.to_owned(),
        message,
    };
    let limit = max_pixels().map_err(decode_err)?;
    let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    if !meta.is_file() {
        return Err(decode_err("not a regular file".into()));
    }
    // No image format needs more than ~5 bytes a pixel on disk.
    if meta.len() > max_encoded_bytes(limit) {
        return Err(too_large(
            path,
            format!(
                "file of {} bytes is larger than any image of at most {limit} pixels \
             (set SCFNET_MAX_PIXELS to raise the limit)",
                meta.len()
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_checked(bytes, path, limit)
}

/// The refusal of an image over the pixel limit.
fn too_large(path: &Path, message: String) -> DataError {
    DataError::TooLarge {
        path: path.to_owned(),
        message,
    }
}

/// The largest encoded image worth reading when images hold at most `limit` pixels (no format
/// needs more than about 5 bytes a pixel).
fn max_encoded_bytes(limit: u64) -> u64 {
    limit.saturating_mul(5).saturating_add(1 << 20)
}

/// Decodes an image already in memory (an upload, say) with the same checks as
/// [`decode_image`]; errors name `name` (a file name or another label of the bytes).
pub fn decode_image_bytes(bytes: Vec<u8>, name: &Path) -> Result<image::DynamicImage> {
    let decode_err = |message: String| DataError::Decode {
        path: name.to_owned(),
        message,
    };
    let limit = max_pixels().map_err(decode_err)?;
    if bytes.len() as u64 > max_encoded_bytes(limit) {
        return Err(too_large(
            name,
            format!(
                "{} bytes is larger than any image of at most {limit} pixels \
             (set SCFNET_MAX_PIXELS to raise the limit)",
                bytes.len()
            ),
        ));
    }
    decode_checked(bytes, name, limit)
}

/// The decoding both entries share, once the encoded size is known to be within `limit`.
fn decode_checked(bytes: Vec<u8>, path: &Path, limit: u64) -> Result<image::DynamicImage> {
    let decode_err = |message: String| DataError::Decode {
        path: path.to_owned(),
        message,
    };
    // A PNG's compressed profile and text inflate whole, outside the pixel limit: left out.
    let bytes = scfnet_base::png_chunks::without_compressed_ancillary(&bytes).unwrap_or(bytes);
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(&bytes[..]))
            .with_guessed_format()
            .map_err(|e| DataError::io(path, e))
    };
    let format = reader()?
        .format()
        .ok_or_else(|| decode_err("not an image in a known format".into()))?;
    let (w, h) = reader()?
        .into_dimensions()
        .map_err(|e| decode_err(e.to_string()))?;
    if w == 0 || h == 0 {
        return Err(decode_err("empty image".into()));
    }
    scfnet_base::check_pixels(w, h).map_err(|m| too_large(path, m))?;
    if format == image::ImageFormat::Jpeg && !jpeg_is_complete(&bytes) {
        return Err(decode_err(
            "truncated JPEG (no end-of-image marker): the file is incomplete".into(),
        ));
    }
    let mut r = reader()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    limits.max_alloc = Some(limit.saturating_mul(16).max(512 << 20));
    r.limits(limits);
    sod_metrics::decode_upright(r).map_err(|e| decode_err(e.to_string()))
}

fn open_image(path: &Path) -> Result<image::DynamicImage> {
    decode_image(path)
}

/// Decodes an image file to RGB floats in `[0, 255]`; the error names the file.
pub fn read_rgb(path: &Path) -> Result<Planar> {
    let img = open_image(path)?.into_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    Ok(Planar::from_u8(w, h, 3, img.as_raw()))
}

/// Decodes a mask file to one channel in `[0, 255]`: the mean of its colour channels, as the
/// original reads masks as 3-channel images and averages them (16-bit masks are scaled to 8 bits).
pub fn read_mask(path: &Path) -> Result<Planar> {
    let img = open_image(path)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let data = match img {
        image::DynamicImage::ImageLuma8(g) => g.into_raw().into_iter().map(f32::from).collect(),
        other => other
            .into_rgb8()
            .pixels()
            .map(|p| (p[0] as f32 + p[1] as f32 + p[2] as f32) / 3.0)
            .collect(),
    };
    Ok(Planar {
        width: w,
        height: h,
        channels: 1,
        data,
    })
}

/// Size of an image file as [`decode_image`] returns it (upright: a rotation its EXIF
/// orientation asks for swaps the sides), without decoding its pixels; the error names the file.
pub fn image_size(path: &Path) -> Result<(usize, usize)> {
    use image::metadata::Orientation;
    use image::ImageDecoder;
    let err = |e: image::ImageError| DataError::Decode {
        path: path.to_owned(),
        message: e.to_string(),
    };
    // The whole file, less what `decode_image` leaves out (the header reader would inflate a
    // PNG's profile too).
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let bytes = scfnet_base::png_chunks::without_compressed_ancillary(&bytes).unwrap_or(bytes);
    let mut decoder = image::ImageReader::new(std::io::Cursor::new(&bytes[..]))
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?
        .into_decoder()
        .map_err(err)?;
    let (w, h) = decoder.dimensions();
    let turned = matches!(
        decoder.orientation().unwrap_or(Orientation::NoTransforms),
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    );
    Ok(if turned {
        (h as usize, w as usize)
    } else {
        (w as usize, h as usize)
    })
}

/// Source index pairs and weights of a half-pixel bilinear axis (`cv2.INTER_LINEAR`).
fn axis(inp: usize, out: usize) -> Vec<(usize, usize, f32)> {
    let scale = inp as f64 / out as f64;
    (0..out)
        .map(|o| {
            let src = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(inp - 1);
            let i1 = (i0 + 1).min(inp - 1);
            (i0, i1, (src - i0 as f64).min(1.0) as f32)
        })
        .collect()
}

/// Bilinear resize to `width × height` with OpenCV's `INTER_LINEAR` mapping.
pub fn resize_bilinear(img: &Planar, width: usize, height: usize) -> Planar {
    if img.width == width && img.height == height {
        return img.clone();
    }
    let mut out = Planar::zeros(width, height, img.channels);
    let mut rows = out.data.chunks_exact_mut((width * img.channels).max(1));
    for_each_resized_row(img, width, height, |row| {
        if let Some(dst) = rows.next() {
            dst.copy_from_slice(row);
        }
    });
    out
}

/// [`resize_bilinear`] appended to `out` channel-planar, `(C, height, width)`: the same values,
/// without the interleaved image in between (the loader fills its batch this way).
pub fn resize_bilinear_chw_into(img: &Planar, width: usize, height: usize, out: &mut Vec<f32>) {
    let (c, plane) = (img.channels, width * height);
    let base = out.len();
    out.resize(base + c * plane, 0.0);
    let planes = &mut out[base..];
    let mut y = 0;
    for_each_resized_row(img, width, height, |row| {
        for (k, dst) in planes.chunks_exact_mut(plane.max(1)).enumerate() {
            let dst = &mut dst[y * width..(y + 1) * width];
            // Literal channel counts, so that the inlined loop is compiled for each.
            match c {
                3 => scatter_channel(3, row, k, dst),
                1 => dst.copy_from_slice(row),
                _ => scatter_channel(c, row, k, dst),
            }
        }
        y += 1;
    });
}

/// Channel `k` of the interleaved `c`-channel row `row` into `dst`.
#[inline(always)]
fn scatter_channel(c: usize, row: &[f32], k: usize, dst: &mut [f32]) {
    for (d, px) in dst.iter_mut().zip(row.chunks_exact(c)) {
        *d = px[k];
    }
}

/// One row of `c`-channel pixels `src` resized horizontally along the taps `ax` into `row`:
/// `p·(1 − fx) + q·fx` for the two source pixels `p`, `q` of each output pixel.
#[inline(always)]
fn blend_columns(c: usize, src: &[f32], ax: &[(usize, usize, f32)], row: &mut [f32]) {
    for (o, &(x0, x1, fx)) in row.chunks_exact_mut(c).zip(ax) {
        let (a, b) = (&src[x0 * c..(x0 + 1) * c], &src[x1 * c..(x1 + 1) * c]);
        for ((d, &p), &q) in o.iter_mut().zip(a).zip(b) {
            *d = p * (1.0 - fx) + q * fx;
        }
    }
}

/// Calls `emit` with each row of `img` resized to `width × height` (interleaved, `width · C`
/// values), top to bottom: each source row is resized horizontally once, when an output row
/// first needs it (two held at a time), then the two rows are blended vertically.
fn for_each_resized_row(img: &Planar, width: usize, height: usize, mut emit: impl FnMut(&[f32])) {
    let c = img.channels;
    let src_len = img.width * c;
    if width * c == 0 {
        return; // nothing to write (no channels, or no columns)
    }
    if img.width == width && img.height == height {
        img.data.chunks_exact(src_len.max(1)).for_each(emit);
        return;
    }
    let (ax, ay) = (axis(img.width, width), axis(img.height, height));
    let horizontal = |y: usize, row: &mut [f32]| {
        let src = &img.data[y * src_len..(y + 1) * src_len];
        // Literal channel counts, so that the inlined loop is compiled for each.
        match c {
            3 => blend_columns(3, src, &ax, row),
            1 => blend_columns(1, src, &ax, row),
            _ => blend_columns(c, src, &ax, row),
        }
    };
    let mut rows = [vec![0f32; width * c], vec![0f32; width * c]];
    let mut held = [usize::MAX; 2];
    let mut line = vec![0f32; width * c];
    for &(y0, y1, fy) in &ay {
        for (need, other) in [(y0, y1), (y1, y0)] {
            if !held.contains(&need) {
                let slot = usize::from(held[0] == other);
                horizontal(need, &mut rows[slot]);
                held[slot] = need;
            }
        }
        let (r0, r1) = (
            &rows[usize::from(held[0] != y0)],
            &rows[usize::from(held[0] != y1)],
        );
        for ((d, &p), &q) in line.iter_mut().zip(r0).zip(r1) {
            *d = p * (1.0 - fy) + q * fy;
        }
        emit(&line);
    }
}

/// The 1-D Gaussian kernel OpenCV uses for an odd size `k` and `sigma = 0`: fixed tables up to
/// 7, else `σ = 0.3·((k − 1)/2 − 1) + 0.8`.
pub fn gaussian_kernel(k: usize) -> Vec<f32> {
    match k {
        1 => vec![1.0],
        3 => vec![0.25, 0.5, 0.25],
        5 => vec![0.0625, 0.25, 0.375, 0.25, 0.0625],
        7 => vec![
            0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125,
        ],
        _ => {
            let sigma = 0.3 * ((k as f64 - 1.0) * 0.5 - 1.0) + 0.8;
            let r = (k / 2) as f64;
            let w: Vec<f64> = (0..k)
                .map(|i| (-(i as f64 - r).powi(2) / (2.0 * sigma * sigma)).exp())
                .collect();
            let s: f64 = w.iter().sum();
            w.into_iter().map(|v| (v / s) as f32).collect()
        }
    }
}

/// Reflect-101 index (`dcb|abcd|cba`) into `0..n`.
fn reflect101(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let n = n as isize;
    let period = 2 * (n - 1);
    let mut i = i.rem_euclid(period);
    if i >= n {
        i = period - i;
    }
    i as usize
}

/// Each row of `img` convolved with `kernel` along x (borders reflected, `BORDER_REFLECT_101`):
/// `s = Σ_j kernel[j]·v(x + j − r)`, summed from 0 in tap order.
fn convolve_rows(img: &Planar, kernel: &[f32]) -> Planar {
    let r = (kernel.len() / 2) as isize;
    let (w, c) = (img.width, img.channels);
    let mut out = Planar::zeros(w, img.height, c);
    if w * c == 0 {
        return out;
    }
    // One row with its reflected borders, so that every tap is a plain read.
    let mut padded = vec![0f32; (w + 2 * r as usize) * c];
    for (src, dst) in img
        .data
        .chunks_exact((w * c).max(1))
        .zip(out.data.chunks_exact_mut((w * c).max(1)))
    {
        for (p, px) in padded.chunks_exact_mut(c).enumerate() {
            let x = reflect101(p as isize - r, w);
            px.copy_from_slice(&src[x * c..(x + 1) * c]);
        }
        for (i, d) in dst.iter_mut().enumerate() {
            let mut s = 0f32;
            for (j, kv) in kernel.iter().enumerate() {
                s += kv * padded[i + j * c];
            }
            *d = s;
        }
    }
    out
}

/// Each column of `img` convolved with `kernel` along y (borders reflected), whole rows at a
/// time: the same sums in the same tap order as [`convolve_rows`].
fn convolve_columns(img: &Planar, kernel: &[f32]) -> Planar {
    let r = (kernel.len() / 2) as isize;
    let (h, row) = (img.height, img.width * img.channels);
    let mut out = Planar::zeros(img.width, h, img.channels);
    for (y, dst) in out.data.chunks_exact_mut(row.max(1)).enumerate() {
        for (j, &kv) in kernel.iter().enumerate() {
            let sy = reflect101(y as isize + j as isize - r, h);
            for (d, &v) in dst.iter_mut().zip(&img.data[sy * row..(sy + 1) * row]) {
                *d += kv * v;
            }
        }
    }
    out
}

/// Separable Gaussian blur with an odd `k × k` kernel (`cv2.GaussianBlur(img, (k, k), 0)`).
pub fn gaussian_blur(img: &Planar, k: usize) -> Planar {
    let kernel = gaussian_kernel(k);
    convolve_columns(&convolve_rows(img, &kernel), &kernel)
}

/// Rows `[top, top + height)` and columns `[left, left + width)`.
///
/// # Panics
/// When the rectangle does not lie inside the image (as slicing out of bounds does), with a
/// message giving both.
pub fn crop(img: &Planar, left: usize, top: usize, width: usize, height: usize) -> Planar {
    let mut out = img.clone();
    crop_in_place(&mut out, left, top, width, height);
    out.data.shrink_to_fit();
    out
}

/// [`crop`] in place: each kept row moved to its place at the front, the rest cut off (no new
/// image-sized buffer; the augmentation crops every sample this way).
///
/// # Panics
/// As [`crop`], before anything is moved.
pub fn crop_in_place(img: &mut Planar, left: usize, top: usize, width: usize, height: usize) {
    let inside = left
        .checked_add(width)
        .is_some_and(|right| right <= img.width)
        && top
            .checked_add(height)
            .is_some_and(|bottom| bottom <= img.height);
    assert!(
        inside,
        "crop of {width}×{height} at ({left}, {top}) does not lie inside the {}×{} image",
        img.width, img.height
    );
    let c = img.channels;
    let (from_row, to_row) = (img.width * c, width * c);
    for y in 0..height {
        let from = (top + y) * from_row + left * c;
        // The destination never lies after the source (`to_row ≤ from_row`), so rows already
        // moved are never overwritten.
        img.data.copy_within(from..from + to_row, y * to_row);
    }
    img.data.truncate(height * to_row);
    img.width = width;
    img.height = height;
}

/// Mirror left–right.
pub fn flip_horizontal(img: &mut Planar) {
    let c = img.channels.max(1);
    for line in img.data.chunks_exact_mut((img.width * c).max(1)) {
        // Reversing the row reverses the pixels and each pixel's channels; the second pass puts
        // the channels back in order.
        line.reverse();
        if c > 1 {
            line.chunks_exact_mut(c).for_each(<[f32]>::reverse);
        }
    }
}

/// Mirror top–bottom.
pub fn flip_vertical(img: &mut Planar) {
    let row = img.width * img.channels;
    for y in 0..img.height / 2 {
        let (top, bottom) = img.data.split_at_mut((img.height - 1 - y) * row);
        top[y * row..(y + 1) * row].swap_with_slice(&mut bottom[..row]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> Planar {
        Planar {
            width: w,
            height: h,
            channels: 1,
            data: (0..w * h).map(|i| i as f32).collect(),
        }
    }

    #[test]
    fn resize_matches_opencv_on_a_small_case() {
        // cv2.resize(np.arange(16, dtype=np.float32).reshape(4, 4), (2, 2)) == [[2.5, 4.5], [10.5, 12.5]]
        let r = resize_bilinear(&ramp(4, 4), 2, 2);
        assert_eq!(r.data, vec![2.5, 4.5, 10.5, 12.5]);
        // Upsampling 2 → 4 in one row: cv2 gives [0, 0.25, 0.75, 1].
        let r = resize_bilinear(&ramp(2, 1), 4, 1);
        assert_eq!(r.data, vec![0.0, 0.25, 0.75, 1.0]);
    }

    /// A `w × h` image of `c` channels with values in no order (to catch mixed-up indices).
    fn scrambled(w: usize, h: usize, c: usize) -> Planar {
        Planar {
            width: w,
            height: h,
            channels: c,
            data: (0..w * h * c)
                .map(|i| ((i * 7919) % 1000) as f32 * 0.255 - 3.0)
                .collect(),
        }
    }

    /// Whether `a` and `b` hold the same values bit for bit.
    fn same_bits(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    /// The resize as it was written before the rows were held (each output row blending its two
    /// source rows afresh): the reference of the memoised one, bit for bit.
    fn resize_row_by_row(img: &Planar, width: usize, height: usize) -> Planar {
        let c = img.channels;
        let (ax, ay) = (axis(img.width, width), axis(img.height, height));
        let mut out = Planar::zeros(width, height, c);
        let mut row0 = vec![0f32; width * c];
        let mut row1 = vec![0f32; width * c];
        let horizontal = |y: usize, row: &mut [f32]| {
            for (x, &(x0, x1, fx)) in ax.iter().enumerate() {
                let (a, b) = (img.at(y, x0), img.at(y, x1));
                for k in 0..c {
                    row[x * c + k] = img.data[a + k] * (1.0 - fx) + img.data[b + k] * fx;
                }
            }
        };
        for (y, &(y0, y1, fy)) in ay.iter().enumerate() {
            horizontal(y0, &mut row0);
            horizontal(y1, &mut row1);
            for i in 0..width * c {
                out.data[y * width * c + i] = row0[i] * (1.0 - fy) + row1[i] * fy;
            }
        }
        out
    }

    #[test]
    fn the_held_rows_resize_gives_the_row_by_row_values_in_both_layouts() {
        let mut cases = 0;
        for c in [1, 3] {
            for (iw, ih) in [(1, 1), (7, 5), (40, 33), (351, 300)] {
                let img = scrambled(iw, ih, c);
                for (w, h) in [
                    (1, 1),
                    (2, 9),
                    (iw, ih),
                    (iw * 2 + 1, ih / 2 + 1),
                    (352, 352),
                ] {
                    let want = resize_row_by_row(&img, w, h);
                    let got = resize_bilinear(&img, w, h);
                    assert_eq!((got.width, got.height, got.channels), (w, h, c));
                    assert!(same_bits(&got.data, &want.data), "{iw}x{ih}x{c} -> {w}x{h}");
                    // Channel-planar, after what is already in the buffer.
                    let mut chw = vec![-1.0; 5];
                    resize_bilinear_chw_into(&img, w, h, &mut chw);
                    let planar: Vec<f32> = (0..c)
                        .flat_map(|k| want.data.iter().skip(k).step_by(c).copied())
                        .collect();
                    assert!(
                        same_bits(&chw[..5], &[-1.0; 5]),
                        "the buffer's start was overwritten"
                    );
                    assert!(
                        same_bits(&chw[5..], &planar),
                        "CHW {iw}x{ih}x{c} -> {w}x{h}"
                    );
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, 40);
    }

    /// The blur's passes as they were first written (every tap's index reflected and checked):
    /// the reference of the padded-row and whole-row passes, bit for bit.
    fn convolve_tap_by_tap(img: &Planar, kernel: &[f32], vertical: bool) -> Planar {
        let r = (kernel.len() / 2) as isize;
        let (w, h, c) = (img.width, img.height, img.channels);
        let mut out = Planar::zeros(w, h, c);
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    let mut s = 0f32;
                    for (j, kv) in kernel.iter().enumerate() {
                        let src = if vertical {
                            img.at(reflect101(y as isize + j as isize - r, h), x)
                        } else {
                            img.at(y, reflect101(x as isize + j as isize - r, w))
                        };
                        s += kv * img.data[src + ch];
                    }
                    let i = out.at(y, x) + ch;
                    out.data[i] = s;
                }
            }
        }
        out
    }

    #[test]
    fn images_without_channels_or_columns_resize_and_blur_to_nothing() {
        let empty = Planar::zeros(4, 3, 0);
        assert!(resize_bilinear(&empty, 5, 2).data.is_empty());
        let mut chw = vec![1.0];
        resize_bilinear_chw_into(&empty, 5, 2, &mut chw);
        assert_eq!(chw, [1.0]);
        assert!(gaussian_blur(&empty, 5).data.is_empty());
        let narrow = Planar::zeros(0, 3, 3);
        assert!(gaussian_blur(&narrow, 3).data.is_empty());
        assert!(resize_bilinear(&scrambled(4, 3, 3), 0, 2).data.is_empty());
    }

    #[test]
    fn the_blur_passes_give_the_tap_by_tap_values() {
        for c in [1, 3] {
            for (w, h) in [(1, 1), (2, 3), (5, 4), (37, 29)] {
                let img = scrambled(w, h, c);
                for k in [3, 5, 7, 9] {
                    let kernel = gaussian_kernel(k);
                    for vertical in [false, true] {
                        let got = if vertical {
                            convolve_columns(&img, &kernel)
                        } else {
                            convolve_rows(&img, &kernel)
                        };
                        let want = convolve_tap_by_tap(&img, &kernel, vertical);
                        assert!(
                            same_bits(&got.data, &want.data),
                            "{w}x{h}x{c} k {k} vertical {vertical}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn blur_keeps_constants_and_mass() {
        let img = Planar {
            width: 9,
            height: 7,
            channels: 3,
            data: vec![42.0; 9 * 7 * 3],
        };
        for k in [3, 5, 7, 9] {
            let b = gaussian_blur(&img, k);
            assert!(b.data.iter().all(|v| (v - 42.0).abs() < 1e-3), "k={k}");
            let s: f32 = gaussian_kernel(k).iter().sum();
            assert!((s - 1.0).abs() < 1e-6);
        }
        let mut impulse = Planar::zeros(9, 9, 1);
        impulse.data[4 * 9 + 4] = 1.0;
        let b = gaussian_blur(&impulse, 3);
        assert_eq!(b.data[4 * 9 + 4], 0.25);
        assert_eq!(b.data[3 * 9 + 3], 0.0625);
    }

    #[test]
    fn flips_and_crop() {
        let mut img = ramp(3, 2);
        flip_horizontal(&mut img);
        assert_eq!(img.data, vec![2.0, 1.0, 0.0, 5.0, 4.0, 3.0]);
        flip_vertical(&mut img);
        assert_eq!(img.data, vec![5.0, 4.0, 3.0, 2.0, 1.0, 0.0]);
        // Three channels: the pixels trade places, each keeps its channel order.
        let mut rgb = Planar {
            width: 3,
            height: 2,
            channels: 3,
            data: (0..18).map(|i| i as f32).collect(),
        };
        flip_horizontal(&mut rgb);
        let want = [6, 7, 8, 3, 4, 5, 0, 1, 2, 15, 16, 17, 12, 13, 14, 9, 10, 11];
        assert_eq!(rgb.data, want.map(|v| v as f32));
        let c = crop(&ramp(4, 3), 1, 1, 2, 2);
        assert_eq!(c.data, vec![5.0, 6.0, 9.0, 10.0]);
        // In place, three channels: rows 1..3, columns 1..3 of a 3 × 3 image.
        let mut rgb = Planar {
            width: 3,
            height: 3,
            channels: 3,
            data: (0..27).map(|i| i as f32).collect(),
        };
        crop_in_place(&mut rgb, 1, 1, 2, 2);
        let want = [12, 13, 14, 15, 16, 17, 21, 22, 23, 24, 25, 26];
        assert_eq!((rgb.width, rgb.height), (2, 2));
        assert_eq!(rgb.data, want.map(|v| v as f32));
        assert_eq!(reflect101(-2, 5), 2);
        assert_eq!(reflect101(6, 5), 2);
    }

    #[test]
    fn a_crop_outside_the_image_is_refused_not_wrapped() {
        // Up to the edges is fine (the whole image, an empty crop at the corner).
        assert_eq!(crop(&ramp(4, 3), 0, 0, 4, 3).data, ramp(4, 3).data);
        assert!(crop(&ramp(4, 3), 4, 3, 0, 0).data.is_empty());
        // One column past the right edge fits in the buffer (it would read the next row's
        // start), one row past the bottom does not, and sums that overflow: each is refused.
        for (left, top, w, h) in [(3, 0, 2, 1), (0, 1, 4, 3), (usize::MAX, 0, 2, 1)] {
            let refused = std::panic::catch_unwind(|| crop(&ramp(4, 3), left, top, w, h));
            let message = refused.expect_err("refused");
            let message = message.downcast_ref::<String>().expect("a message");
            assert!(message.contains("inside the 4×3 image"), "{message}");
        }
    }
}

#[cfg(test)]
mod decode_tests {
    use super::*;

    #[test]
    fn a_jpeg_without_its_end_marker_is_truncated() {
        // SOI, then scan-like bytes (no FF D9), then EOI only in the complete file.
        let mut full = vec![0xFF, 0xD8];
        full.extend((0..10_000u32).map(|i| (i * 31 % 251) as u8));
        let cut = full.clone();
        full.extend_from_slice(&[0xFF, 0xD9]);
        assert!(jpeg_is_complete(&full));
        assert!(!jpeg_is_complete(&cut));
        // Trailing bytes after the marker (some cameras) are fine.
        full.extend_from_slice(&[0u8; 100]);
        assert!(jpeg_is_complete(&full));
    }

    #[test]
    fn the_pixel_limit_is_checked_from_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        image::GrayImage::new(300, 200).save(&path).unwrap();
        assert!(decode_image(&path).is_ok());
        assert!(max_pixels().unwrap() >= 60_000);
    }
}
