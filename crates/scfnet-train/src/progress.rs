//! How [`crate::fit`] reports where it is: events for a caller-drawn progress display (the CLI
//! draws a bar); without a callback, the notes go to `tracing`.

/// One thing that happened in a run.
#[derive(Clone, Debug, PartialEq)]
pub enum FitEvent<'a> {
    /// The run starts at step `position` of the `total` steps of its schedule.
    Start {
        /// Steps already done (a resumed run starts past 0).
        position: usize,
        /// Steps of the whole schedule.
        total: usize,
    },
    /// Epoch `epoch` (0-based) of `epochs` begins.
    Epoch {
        /// 0-based epoch.
        epoch: usize,
        /// Epochs of the schedule.
        epochs: usize,
    },
    /// A batch is done (an empty one, all of whose samples were skipped, too).
    Step {
        /// Steps done so far.
        position: usize,
        /// Total loss of the step, if one ran.
        loss: Option<f64>,
        /// Learning rate of the step.
        lr: f64,
    },
    /// A line worth showing: an epoch's mean loss, validation scores, an early stop.
    Note(&'a str),
    /// The run is over.
    End,
}

/// A callback receiving [`FitEvent`]s.
pub type ProgressCallback = Box<dyn FnMut(FitEvent<'_>) + Send>;

/// Sends events to the callback, or notes to `tracing` when there is none.
pub(crate) struct Reporter<'a> {
    callback: Option<&'a mut ProgressCallback>,
}

impl<'a> Reporter<'a> {
    pub(crate) fn new(callback: Option<&'a mut ProgressCallback>) -> Self {
        Self { callback }
    }

    pub(crate) fn emit(&mut self, event: FitEvent<'_>) {
        match (&mut self.callback, event) {
            (Some(cb), e) => cb(e),
            (None, FitEvent::Note(text)) => tracing::info!("{text}"),
            (None, _) => {}
        }
    }

    pub(crate) fn note(&mut self, text: String) {
        self.emit(FitEvent::Note(&text));
    }
}
