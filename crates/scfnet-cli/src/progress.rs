//! The training progress bar: drawn by the binary from the library's [`FitEvent`]s.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use scfnet_train::{FitEvent, ProgressCallback};

/// A callback drawing a bar on standard error (steps, epoch, loss, learning rate, ETA) and
/// printing the run's notes above it; `quiet` prints the notes only.
pub fn training_bar(quiet: bool) -> ProgressCallback {
    let pb = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} steps, {msg}, {elapsed} elapsed, ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    Box::new(move |event| match event {
        FitEvent::Start { position, total } => {
            pb.set_length(total as u64);
            pb.set_position(position as u64);
        }
        FitEvent::Epoch { epoch, epochs } => pb.set_prefix(format!("epoch {}/{epochs}", epoch + 1)),
        FitEvent::Step { position, loss, lr } => {
            if let Some(loss) = loss {
                pb.set_message(format!("loss {loss:.4}, lr {lr:.2e}"));
            }
            pb.set_position(position as u64);
        }
        FitEvent::Note(text) => pb.suspend(|| tracing::info!("{text}")),
        FitEvent::End => pb.finish_and_clear(),
    })
}
