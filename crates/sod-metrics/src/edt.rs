//! Exact Euclidean distance transform, and the nearest foreground pixel with scipy's tie rule.
//!
//! The weighted F-measure needs, for every pixel, the squared distance to the nearest foreground
//! pixel, and for background pixels next to the foreground *which* foreground pixel that is (its
//! error is copied). Among equally near pixels scipy's `distance_transform_edt` returns the one
//! with the smallest column, then the smallest row; [`DistanceTransform::nearest`] follows the same
//! rule: the lexicographic minimum of (distance², column, row).
//!
//! Distances: two passes, along each column (distance to the nearest foreground row), then along
//! each row with the lower envelope of parabolas of Felzenszwalb & Huttenlocher, using exact
//! integer comparisons. The nearest pixel is then found on demand by enumerating the lattice
//! points at exactly that distance, in (column, row) order.

/// "No foreground pixel" distance.
const FAR: u32 = u32::MAX;

/// Largest image side the transform supports: squared distances must fit a `u32`.
pub const MAX_SIDE: usize = 46_340;

/// Squared distances to the nearest foreground pixel, row-major `(H, W)`.
#[derive(Clone, Debug, Default)]
pub struct DistanceTransform {
    width: usize,
    height: usize,
    /// Squared distance to the nearest foreground pixel (0 on the foreground; `u32::MAX`
    /// everywhere when the mask has no foreground).
    pub dist2: Vec<u32>,
    /// Pass-1 buffer: squared distance to the nearest foreground pixel in the same column.
    col_d2: Vec<u32>,
}

/// A rational number `num / den` with `den > 0`.
///
/// Numerators are below `2 (H² + W²) < 2³⁴` and denominators below `2W < 2¹⁷`; the sentinels
/// ±2⁴⁰ stand for ±∞, so every cross product fits an `i64` and comparisons are exact.
#[derive(Clone, Copy)]
struct Frac {
    num: i64,
    den: i64,
}

impl Frac {
    const NEG_INF: Frac = Frac {
        num: -(1 << 40),
        den: 1,
    };
    const INF: Frac = Frac {
        num: 1 << 40,
        den: 1,
    };

    /// `self <= other`.
    #[inline]
    fn le(self, other: Frac) -> bool {
        self.num * other.den <= other.num * self.den
    }
}

/// Integer square root (floor).
fn isqrt(v: u64) -> u64 {
    let mut r = (v as f64).sqrt() as u64;
    while r * r > v {
        r -= 1;
    }
    while (r + 1) * (r + 1) <= v {
        r += 1;
    }
    r
}

/// Computes the squared distance transform of a foreground mask of `width * height` pixels.
///
/// Both sides must be at most 46 340, so that squared distances fit a `u32` (checked when a
/// [`crate::SaliencyPair`] is built); a larger side panics.
pub fn distance_transform(mask: &[bool], width: usize, height: usize, out: &mut DistanceTransform) {
    assert!(
        width <= MAX_SIDE && height <= MAX_SIDE,
        "image side above {MAX_SIDE}"
    );
    let n = width * height;
    out.width = width;
    out.height = height;
    // Every entry of both buffers is written below; resizing only adjusts the length.
    out.dist2.resize(n, FAR);
    let col_d2 = &mut out.col_d2;
    col_d2.resize(n, FAR);

    // Pass 1, along columns (swept row by row, so the inner loops run over contiguous rows):
    // distance to the nearest foreground pixel above, then below. `run` counts rows since the
    // last foreground pixel of each column, saturating at `FAR_RUN` ("none yet").
    const FAR_RUN: u32 = u32::MAX;
    let mut run = vec![FAR_RUN; width];
    for (m_row, d_row) in mask.chunks_exact(width).zip(col_d2.chunks_exact_mut(width)) {
        for ((&m, r), d) in m_row.iter().zip(run.iter_mut()).zip(d_row.iter_mut()) {
            *r = if m { 0 } else { r.saturating_add(1) };
            *d = if *r == FAR_RUN { FAR } else { *r * *r };
        }
    }
    run.fill(FAR_RUN);
    for (m_row, d_row) in mask
        .chunks_exact(width)
        .zip(col_d2.chunks_exact_mut(width))
        .rev()
    {
        for ((&m, r), d) in m_row.iter().zip(run.iter_mut()).zip(d_row.iter_mut()) {
            *r = if m { 0 } else { r.saturating_add(1) };
            if *r != FAR_RUN {
                *d = (*d).min(*r * *r);
            }
        }
    }

    // Pass 2, along rows: lower envelope of the parabolas (x - c)² + g(c) over the columns c
    // that have a foreground pixel.
    let mut v = vec![0usize; width];
    let mut z = vec![Frac::NEG_INF; width + 1];
    for r in 0..height {
        let row = r * width;
        let g = &col_d2[row..row + width];
        let mut k: isize = -1;
        for (q, &gq) in g.iter().enumerate() {
            if gq == FAR {
                continue;
            }
            if k < 0 {
                k = 0;
                v[0] = q;
                z[0] = Frac::NEG_INF;
                z[1] = Frac::INF;
                continue;
            }
            let fq = gq as i64 + (q * q) as i64;
            let mut s;
            loop {
                let p = v[k as usize];
                s = Frac {
                    num: fq - (g[p] as i64 + (p * p) as i64),
                    den: 2 * (q - p) as i64,
                };
                if s.le(z[k as usize]) {
                    k -= 1;
                } else {
                    break;
                }
            }
            k += 1;
            v[k as usize] = q;
            z[k as usize] = s;
            z[k as usize + 1] = Frac::INF;
        }
        if k < 0 {
            // No foreground at all.
            out.dist2[row..row + width].fill(FAR);
            continue;
        }
        // Parabola j is the minimum for the integers x with z[j] < x <= z[j + 1]; at an exact
        // tie (x == z[j + 1]) the earlier, smaller-column parabola keeps x.
        let dist = &mut out.dist2[row..row + width];
        let mut x = 0usize;
        for j in 0..=k as usize {
            let Frac { num, den } = z[j + 1];
            let c = v[j];
            // x <= num / den, compared without a division.
            while x < width && x as i64 * den <= num {
                let dx = x.abs_diff(c) as u32;
                dist[x] = dx * dx + g[c];
                x += 1;
            }
        }
    }
}

/// Lattice offsets `(dx, dy)` with `dx² + dy² = d²`, for `d² = 0..=SMALL_D2`, in scipy's
/// preference order (smallest column first, then smallest row).
const SMALL_D2: usize = 32;

fn small_offsets() -> &'static [Vec<(i64, i64)>] {
    static TABLE: std::sync::OnceLock<Vec<Vec<(i64, i64)>>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let reach = (SMALL_D2 as f64).sqrt() as i64;
        let mut table = vec![Vec::new(); SMALL_D2 + 1];
        for dx in -reach..=reach {
            for dy in -reach..=reach {
                let d2 = (dx * dx + dy * dy) as usize;
                if d2 <= SMALL_D2 {
                    table[d2].push((dx, dy));
                }
            }
        }
        // The loops already produce (dx, dy) in lexicographic order.
        table
    })
}

impl DistanceTransform {
    /// The nearest foreground pixel `(row, col)` of pixel `(row, col)`, ties broken by the
    /// smallest column and then the smallest row (scipy's rule); `None` without foreground.
    ///
    /// `mask` must be the mask the transform was computed from. Cost grows with the distance
    /// (`O(√d²)`), so it is meant for pixels near the foreground.
    pub fn nearest(&self, mask: &[bool], row: usize, col: usize) -> Option<(usize, usize)> {
        let d2 = self.dist2[row * self.width + col];
        if d2 == FAR {
            return None;
        }
        let inside = |r: i64, c: i64| {
            r >= 0
                && c >= 0
                && r < self.height as i64
                && c < self.width as i64
                && mask[r as usize * self.width + c as usize]
        };
        if (d2 as usize) <= SMALL_D2 {
            let (row, col) = (row as i64, col as i64);
            return small_offsets()[d2 as usize]
                .iter()
                .map(|&(dx, dy)| (row + dy, col + dx))
                .find(|&(r, c)| inside(r, c))
                .map(|(r, c)| (r as usize, c as usize));
        }
        let d2 = d2 as u64;
        let reach = isqrt(d2) as i64;
        for dx in -reach..=reach {
            let c = col as i64 + dx;
            if c < 0 || c >= self.width as i64 {
                continue;
            }
            let rem = d2 - (dx * dx) as u64;
            let dy = isqrt(rem);
            if dy * dy != rem {
                continue;
            }
            for r in [row as i64 - dy as i64, row as i64 + dy as i64] {
                if r >= 0 && r < self.height as i64 && mask[r as usize * self.width + c as usize] {
                    return Some((r as usize, c as usize));
                }
            }
        }
        unreachable!("a foreground pixel lies at the transform's exact distance")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force: lexicographic minimum of (d², column, row) over all foreground pixels.
    fn brute(mask: &[bool], w: usize, h: usize) -> (Vec<u32>, Vec<Option<(usize, usize)>>) {
        let mut d2 = vec![u32::MAX; w * h];
        let mut idx = vec![None; w * h];
        for r in 0..h {
            for c in 0..w {
                let mut best: Option<(u32, usize, usize)> = None;
                for fr in 0..h {
                    for fc in 0..w {
                        if !mask[fr * w + fc] {
                            continue;
                        }
                        let d = (r.abs_diff(fr).pow(2) + c.abs_diff(fc).pow(2)) as u32;
                        let key = (d, fc, fr);
                        if best.is_none_or(|b| key < b) {
                            best = Some(key);
                        }
                    }
                }
                if let Some((d, fc, fr)) = best {
                    d2[r * w + c] = d;
                    idx[r * w + c] = Some((fr, fc));
                }
            }
        }
        (d2, idx)
    }

    /// A tiny deterministic generator (xorshift) so the test needs no extra crate.
    fn masks(seed: u64, count: usize) -> Vec<(usize, usize, Vec<bool>)> {
        let mut s = seed;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        (0..count)
            .map(|_| {
                let w = 1 + (next() % 23) as usize;
                let h = 1 + (next() % 19) as usize;
                let density = 1 + next() % 40;
                let mask = (0..w * h).map(|_| next() % 100 < density).collect();
                (w, h, mask)
            })
            .collect()
    }

    #[test]
    fn matches_brute_force_with_tie_rule() {
        let mut out = DistanceTransform::default();
        let mut cases = masks(0x9e3779b97f4a7c15, 400);
        // Symmetric layouts that produce many exact ties.
        let mut sym = vec![false; 11 * 9];
        sym[4 * 11 + 2] = true;
        sym[4 * 11 + 8] = true;
        sym[0] = true;
        sym[8 * 11 + 10] = true;
        cases.push((11, 9, sym));
        for (w, h, mask) in cases {
            distance_transform(&mask, w, h, &mut out);
            let (d2, idx) = brute(&mask, w, h);
            assert_eq!(out.dist2, d2, "distances differ on {w}x{h} {mask:?}");
            for r in 0..h {
                for c in 0..w {
                    assert_eq!(
                        out.nearest(&mask, r, c),
                        idx[r * w + c],
                        "nearest of ({r}, {c}) on {w}x{h} {mask:?}"
                    );
                }
            }
        }
    }
}
