//! The pixel limit of every image decoder of the workspace.

/// Most pixels an image file may have unless `SCFNET_MAX_PIXELS` says otherwise: 64 million
/// (8000 × 8000). A file declaring more is refused from its header, before anything is
/// allocated (a 70-byte PNG can declare 13000 × 13000). The scfnet tools share this limit.
pub const DEFAULT_MAX_PIXELS: u64 = 64_000_000;

/// The pixel limit in force: `SCFNET_MAX_PIXELS` if set, else [`DEFAULT_MAX_PIXELS`]. A value
/// that is not a positive integer is an error (naming the variable and the value), not a
/// silent fallback to the default.
pub fn max_pixels() -> Result<u64, String> {
    parse_limit(std::env::var_os("SCFNET_MAX_PIXELS").as_deref())
}

/// [`max_pixels`] of the variable's value (`None`: unset).
fn parse_limit(value: Option<&std::ffi::OsStr>) -> Result<u64, String> {
    let Some(value) = value else {
        return Ok(DEFAULT_MAX_PIXELS);
    };
    value
        .to_str()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            format!(
                "SCFNET_MAX_PIXELS={value:?} is not a positive integer (the most pixels an image \
                 may have; unset, the limit is {DEFAULT_MAX_PIXELS})"
            )
        })
}

/// `Err(message)` when a `width × height` image exceeds [`max_pixels`] (or the limit itself is
/// invalid): the one check of every image decoder of the workspace, made from the header before
/// anything is allocated.
pub fn check_pixels(width: u32, height: u32) -> Result<(), String> {
    let (pixels, limit) = (width as u64 * height as u64, max_pixels()?);
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
    fn the_limit_is_a_positive_integer_or_an_error_naming_the_variable() {
        use std::ffi::OsStr;
        assert_eq!(parse_limit(None), Ok(DEFAULT_MAX_PIXELS));
        assert_eq!(parse_limit(Some(OsStr::new(" 1000 "))), Ok(1000));
        for bad in ["abc", "0", "-1", "", "1e6", "99999999999999999999999"] {
            let err = parse_limit(Some(OsStr::new(bad))).unwrap_err();
            assert!(
                err.contains("SCFNET_MAX_PIXELS") && err.contains(&format!("{bad:?}")),
                "{err}"
            );
        }
    }

    #[test]
    fn images_up_to_the_limit_pass_and_larger_ones_are_named() {
        let limit = max_pixels().unwrap();
        assert!(limit >= 1);
        let side = (limit as f64).sqrt() as u32;
        assert!(check_pixels(side, side).is_ok());
        assert!(check_pixels(1, 1).is_ok());
        let err = check_pixels(u32::MAX, u32::MAX).unwrap_err();
        assert!(err.contains("4294967295x4294967295"), "{err}");
        assert!(err.contains("SCFNET_MAX_PIXELS"), "{err}");
    }
}
