//! Scoring many pairs on all cores with deterministic results.

use rayon::prelude::*;

use crate::image_scores::{ImageScores, Scorer};
use crate::pair::SaliencyPair;

/// Prepares and scores every item in parallel and returns the results in input order.
///
/// `prepare` turns an item (a file pair, a buffer, …) into a [`SaliencyPair`] plus any extra
/// value the caller wants back; `on_done` is called once per finished item (for a progress
/// bar). Per-image scores do not depend on the thread count, and since they come back in input
/// order, pushing them into an [`crate::Accumulator`] gives identical dataset scores whatever the
/// number of threads.
pub fn score_parallel<T, X, E, P, D>(
    items: &[T],
    prepare: P,
    on_done: D,
) -> Vec<Result<(ImageScores, X), E>>
where
    T: Sync,
    X: Send,
    E: Send,
    P: Fn(&T) -> Result<(SaliencyPair, X), E> + Sync,
    D: Fn() + Sync,
{
    items
        .par_iter()
        .map_init(Scorer::new, |scorer, item| {
            let result = prepare(item).map(|(pair, extra)| (scorer.score(&pair), extra));
            on_done();
            result
        })
        .collect()
}
