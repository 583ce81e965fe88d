//! The pixel limit of every image decoder of the workspace.

/// Most pixels an image file may have unless `SCFNET_MAX_PIXELS` says otherwise: 64 million
/// (8000 × 8000). A file declaring more is refused from its header, before anything is
/// allocated (a 70-byte PNG can declare 13000 × 13000). The scfnet tools share this limit.
pub const DEFAULT_MAX_PIXELS: u64 = 64_000_000;

/// The pixel limit in force: `SCFNET_MAX_PIXELS` (a positive integer) if set, else
/// [`DEFAULT_MAX_PIXELS`].
pub fn max_pixels() -> u64 {
    std::env::var("SCFNET_MAX_PIXELS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_MAX_PIXELS)
}

/// `Err(message)` when a `width × height` image exceeds [`max_pixels`]: the one check of every
/// image decoder of the workspace, made from the header before anything is allocated.
pub fn check_pixels(width: u32, height: u32) -> Result<(), String> {
    let (pixels, limit) = (width as u64 * height as u64, max_pixels());
    if pixels > limit {
        return Err(format!(
            "{width}x{height} = {pixels} pixels, more than the limit of {limit} (set SCFNET_MAX_PIXELS to raise it)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_up_to_the_limit_pass_and_larger_ones_are_named() {
        let limit = max_pixels();
        assert!(limit >= 1);
        let side = (limit as f64).sqrt() as u32;
        assert!(check_pixels(side, side).is_ok());
        assert!(check_pixels(1, 1).is_ok());
        let err = check_pixels(u32::MAX, u32::MAX).unwrap_err();
        assert!(err.contains("4294967295x4294967295"), "{err}");
        assert!(err.contains("SCFNET_MAX_PIXELS"), "{err}");
    }
}
