//! Deterministic synthetic prediction / GT pairs for benchmarks and the demo set.
//!
//! GT: one to three filled ellipses. Prediction: a soft version of the GT (smooth falloff
//! around the boundary), plus a spurious blob, a missed part and low-amplitude noise, scaled
//! by a per-method quality so that better "methods" get visibly better scores.

/// xorshift64* generator: tiny, seedable, identical on every platform.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value; 0 is remapped).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// An axis-aligned ellipse `((x - cx) / rx)² + ((y - cy) / ry)² <= 1`.
#[derive(Clone, Copy)]
struct Ellipse {
    cx: f64,
    cy: f64,
    rx: f64,
    ry: f64,
}

impl Ellipse {
    fn random(rng: &mut Rng, w: f64, h: f64) -> Self {
        Self {
            cx: rng.range(0.25, 0.75) * w,
            cy: rng.range(0.25, 0.75) * h,
            rx: rng.range(0.08, 0.25) * w,
            ry: rng.range(0.08, 0.25) * h,
        }
    }

    /// Normalised radius: < 1 inside.
    fn radius(&self, x: f64, y: f64) -> f64 {
        (((x - self.cx) / self.rx).powi(2) + ((y - self.cy) / self.ry).powi(2)).sqrt()
    }
}

/// One synthetic pair, 8-bit, row-major.
pub struct SyntheticPair {
    /// Prediction map.
    pub pred: Vec<u8>,
    /// GT mask (0 / 255).
    pub gt: Vec<u8>,
}

/// A pair of `width × height` from `seed`; `quality` in `[0, 1]` (1 = close to the GT).
pub fn pair(seed: u64, width: usize, height: usize, quality: f64) -> SyntheticPair {
    let mut rng = Rng::new(seed);
    let (w, h) = (width as f64, height as f64);
    let objects: Vec<Ellipse> = (0..1 + rng.next_u64() % 3)
        .map(|_| Ellipse::random(&mut rng, w, h))
        .collect();
    let mut spurious = Ellipse::random(&mut rng, w, h);
    spurious.rx *= 0.5;
    spurious.ry *= 0.5;
    let error = 1.0 - quality.clamp(0.0, 1.0);
    let softness = 0.05 + 0.4 * error;
    let mut noise_rng = Rng::new(seed ^ 0xDEAD_BEEF);
    let mut gt = Vec::with_capacity(width * height);
    let mut pred = Vec::with_capacity(width * height);
    for y in 0..height {
        for x in 0..width {
            let (fx, fy) = (x as f64 + 0.5, y as f64 + 0.5);
            let r = objects
                .iter()
                .map(|e| e.radius(fx, fy))
                .fold(f64::INFINITY, f64::min);
            gt.push(if r <= 1.0 { 255 } else { 0 });
            // Soft response around the true boundary, a false blob, a weaker missed region.
            let soft = 1.0 / (1.0 + ((r - 1.0 + 0.3 * error) / softness).exp());
            let false_blob = error * 0.8 / (1.0 + ((spurious.radius(fx, fy) - 1.0) / 0.1).exp());
            let missed = if fx > w * (1.0 - 0.3 * error) {
                0.5
            } else {
                1.0
            };
            let noise = (noise_rng.unit() - 0.5) * 0.2 * error;
            let v = (soft * missed + false_blob + noise).clamp(0.0, 1.0);
            pred.push((v * 255.0).round() as u8);
        }
    }
    SyntheticPair { pred, gt }
}

/// An RGB picture (row-major, 3 bytes a pixel) of the objects of `gt` (255 = object) on a
/// textured background: what a saliency model would be asked to segment.
pub fn rgb_scene(seed: u64, width: usize, height: usize, gt: &[u8]) -> Vec<u8> {
    let mut rng = Rng::new(seed ^ 0x5EED);
    let bg = [
        rng.range(40.0, 140.0),
        rng.range(40.0, 140.0),
        rng.range(40.0, 140.0),
    ];
    let fg = [
        rng.range(150.0, 255.0),
        rng.range(0.0, 120.0),
        rng.range(60.0, 255.0),
    ];
    let (fx, fy) = (rng.range(0.05, 0.2), rng.range(0.05, 0.2));
    let mut out = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            let texture =
                25.0 * ((x as f64 * fx).sin() * (y as f64 * fy).cos()) + 15.0 * (rng.unit() - 0.5);
            let inside = gt[y * width + x] > 128;
            for c in 0..3 {
                let v = if inside {
                    fg[c] - 0.15 * texture
                } else {
                    bg[c] + texture
                };
                out.push(v.clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}
