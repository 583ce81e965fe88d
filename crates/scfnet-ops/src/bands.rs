//! Row bands: how the CPU kernels cut an image's planes across threads when there are fewer
//! images than threads (batch 1).
//!
//! Every kernel of the inference path numbers its work items region-major (rows of the image
//! first, channels inside), so when rayon halves a loop between two threads, each thread gets
//! the same region of the image in every layer: the rows it reads were mostly written by itself
//! a layer earlier and are still in its own cache. Cutting by channels instead made each layer
//! read half of its input from the other core's cache.

/// Fewest output rows in a band (each band re-reads the kernel's overlap rows).
pub(crate) const MIN_BAND_ROWS: usize = 8;

/// Bands of rows per image for a layer with `rows` output rows: with fewer images than threads,
/// enough bands of at least [`MIN_BAND_ROWS`] rows for each thread to take two; otherwise one
/// (whole planes).
pub(crate) fn row_bands(images: usize, rows: usize) -> usize {
    let threads = rayon::current_num_threads();
    if images >= threads {
        return 1;
    }
    (2 * threads)
        .div_ceil(images.max(1))
        .min(rows / MIN_BAND_ROWS)
        .max(1)
}

/// The planes of `out` (`images × channels` planes of `rows × width` values) cut into bands of
/// rows as [`row_bands`] decides: `(plane, first row, its values)` work items, image first, then
/// band, then channel, so that a halved loop gives each thread one region of each image.
pub(crate) fn plane_bands<T>(
    out: &mut [T],
    (images, channels): (usize, usize),
    (rows, width): (usize, usize),
) -> Vec<(usize, usize, &mut [T])> {
    let band_rows = rows.div_ceil(row_bands(images, rows)).max(1);
    let mut items: Vec<_> = out
        .chunks_mut((rows * width).max(1))
        .enumerate()
        .flat_map(|(p, plane)| {
            plane
                .chunks_mut((band_rows * width).max(1))
                .enumerate()
                .map(move |(band, dst)| (p, band * band_rows, dst))
        })
        .collect();
    items.sort_by_key(|&(p, y0, _)| (p / channels.max(1), y0, p));
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_only_when_images_are_fewer_than_threads() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(|| {
            assert_eq!(row_bands(1, 88), 4);
            assert_eq!(row_bands(1, 22), 2);
            assert_eq!(row_bands(1, 11), 1);
            assert_eq!(row_bands(2, 88), 1);
            assert_eq!(row_bands(8, 88), 1);
        });
    }
}
