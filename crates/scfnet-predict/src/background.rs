//! The work of a prediction run besides the network, in short steps that any thread can run:
//! decoding and preparing one image, or making and encoding one image's map.
//!
//! Three kinds of thread run the steps: the busy-waiting helper of a single-image pass whenever
//! it has no piece of the network to run ([`Predictor::batch_logits_beside`]), background workers at
//! idle priority (batches of several images, or a GPU: in the gaps the network leaves), and the
//! network's own thread while it waits for the next batch. So the cores never idle while there is a step to run, and the network
//! never waits for a stage that another core could have finished.

use std::collections::{BTreeMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use scfnet_model::{InputBatch, Logits, Predictor};

use crate::cpu_clock::CpuTotal;
use crate::inputs::{self, Decoded};
use crate::sink::{encode_outputs, Encoded, Outcome};

/// A decoded image whose network input is in its batch's [`InputBatch`], or the failure line of
/// one that did not decode.
pub type Prepared = Result<Decoded, String>;

/// The network input of one batch, filled in place by the steps that decode its images.
type SharedInputs = Arc<Mutex<InputBatch>>;

/// A batch the network has run: its images and their logits.
type Mapped = Arc<(Vec<Decoded>, Logits)>;

/// Maps waiting to be made beyond this many (in images) make the network's thread help make
/// them before it queues more, so that a network faster than the encoding does not fill the
/// memory.
const MAX_WAITING_MAPS: usize = 64;

/// The shared queue of steps.
pub struct Background<'a> {
    inputs: &'a [(PathBuf, PathBuf)],
    predictor: &'a Predictor,
    /// Images per batch: input `i` goes to place `i % batch` of batch `i / batch`.
    batch: usize,
    out_dir: &'a std::path::Path,
    cutout: bool,
    state: Mutex<State>,
    /// Signalled whenever a step ends or new work arrives.
    changed: Condvar,
    /// CPU time of the steps that decoded and prepared images.
    pub decoding_cpu: CpuTotal,
    /// CPU time of the steps that made and encoded maps.
    pub maps_cpu: CpuTotal,
}

/// What is waiting and running.
struct State {
    /// The next input to decode.
    next: usize,
    /// Inputs below this may be decoded (the batches the network will take next).
    limit: usize,
    /// Decoded inputs the network has not taken yet, by index.
    decoded: BTreeMap<usize, Prepared>,
    /// The network inputs of the batches being decoded, by batch number.
    batches: BTreeMap<usize, SharedInputs>,
    /// Maps to make: a batch, and the image's place in it.
    maps: VecDeque<(Mapped, usize)>,
    /// Steps running now.
    running: usize,
    /// Where the outcomes go (the writing thread); `None` once the last batch is queued and
    /// every map made.
    outcomes: Option<Sender<Outcome>>,
    /// No more batches will come: no more decoding.
    closed: bool,
}

/// One step, taken from the queue.
enum Step {
    Decode(usize),
    Map(Mapped, usize, Sender<Outcome>),
}

impl<'a> Background<'a> {
    /// The steps of predicting `inputs` with `predictor` in batches of `batch` (at least 1),
    /// writing the outcomes to `outcomes`.
    pub fn new(
        inputs: &'a [(PathBuf, PathBuf)],
        (predictor, batch): (&'a Predictor, usize),
        (out_dir, cutout): (&'a std::path::Path, bool),
        outcomes: Sender<Outcome>,
    ) -> Self {
        Self {
            inputs,
            predictor,
            batch: batch.max(1),
            out_dir,
            cutout,
            state: Mutex::new(State {
                next: 0,
                limit: 0,
                decoded: BTreeMap::new(),
                batches: BTreeMap::new(),
                maps: VecDeque::new(),
                running: 0,
                outcomes: Some(outcomes),
                closed: false,
            }),
            changed: Condvar::new(),
            decoding_cpu: CpuTotal::default(),
            maps_cpu: CpuTotal::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A step that panicked poisons nothing the others rely on (it ran unlocked).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the next step, if any: maps first (they free memory), then decoding.
    fn claim(&self, state: &mut State) -> Option<Step> {
        if let Some(outcomes) = state.outcomes.clone() {
            if let Some((batch, i)) = state.maps.pop_front() {
                state.running += 1;
                return Some(Step::Map(batch, i, outcomes));
            }
        }
        if !state.closed && state.next < state.limit.min(self.inputs.len()) {
            state.next += 1;
            state.running += 1;
            return Some(Step::Decode(state.next - 1));
        }
        None
    }

    /// Runs `step` (unlocked), records its result, and wakes the waiting threads.
    fn run(&self, step: Step) {
        match step {
            Step::Decode(i) => {
                let (path, rel) = &self.inputs[i];
                // A decoder that panics on a hostile file fails that file, not the run (and the
                // threads waiting for it do not wait forever).
                let prepared = self.decoding_cpu.time(|| {
                    catch_unwind(AssertUnwindSafe(|| -> Prepared {
                        let mut img = inputs::decode(path, rel).map_err(|e| e.to_string())?;
                        // The batch's reference is dropped with this statement, before the
                        // image counts as decoded: the network's thread takes the batch's inputs
                        // once every image is, and must then hold the only reference.
                        self.inputs_of_batch(i / self.batch)
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .fill(i % self.batch, img.as_rgb())
                            .map_err(|e| format!("{}: {e}", path.display()))?;
                        if !self.cutout {
                            // Only a cutout needs the pixels again: memory the next images can
                            // use while this one waits for its map.
                            img.rgb = Vec::new();
                        }
                        Ok(img)
                    }))
                    .unwrap_or_else(|_| Err(format!("{}: the decoder panicked", path.display())))
                });
                let mut state = self.lock();
                state.decoded.insert(i, prepared);
                state.running -= 1;
            }
            Step::Map(batch, i, outcomes) => {
                let (images, logits) = &*batch;
                let img = &images[i];
                let outcome = self.maps_cpu.time(|| {
                    catch_unwind(AssertUnwindSafe(|| {
                        let path = img.path.display();
                        logits
                            .map(i, img.height, img.width)
                            .map_err(|e| format!("{path}: no map: {e}"))
                            .and_then(|map| {
                                encode_outputs(img, map, self.out_dir, self.cutout)
                                    .map_err(|e| format!("{path}: cannot encode the map: {e}"))
                            })
                            .map_or_else(Outcome::Failed, |files| {
                                Outcome::Encoded(Encoded {
                                    image: img.path.clone(),
                                    files,
                                })
                            })
                    }))
                    .unwrap_or_else(|_| {
                        Outcome::Failed(format!(
                            "{}: encoding the map panicked",
                            img.path.display()
                        ))
                    })
                });
                // The writing thread ends only after every sender is gone.
                let _ = outcomes.send(outcome);
                drop(outcomes);
                drop(batch);
                self.lock().running -= 1;
            }
        }
        self.changed.notify_all();
    }

    /// The shared network input of batch `k`, made on first use.
    fn inputs_of_batch(&self, k: usize) -> SharedInputs {
        let mut state = self.lock();
        if let Some(inputs) = state.batches.get(&k) {
            return inputs.clone();
        }
        let len = self.batch.min(self.inputs.len() - k * self.batch);
        let inputs = Arc::new(Mutex::new(self.predictor.input_batch(len)));
        state.batches.insert(k, inputs.clone());
        inputs
    }

    /// Runs one step if there is one; returns whether it did. Never blocks for long (the lock
    /// is held only to take and record steps).
    pub fn step(&self) -> bool {
        let step = self.claim(&mut self.lock());
        match step {
            Some(step) => {
                self.run(step);
                true
            }
            None => false,
        }
    }

    /// Lets the steps decode the inputs below `limit`.
    pub fn allow(&self, limit: usize) {
        let mut state = self.lock();
        if limit > state.limit {
            state.limit = limit;
            drop(state);
            self.changed.notify_all();
        }
    }

    /// Runs steps on the calling thread, or waits for the others', until `done` holds; returns
    /// the state, locked, at that moment.
    fn help_until(&self, mut done: impl FnMut(&State) -> bool) -> MutexGuard<'_, State> {
        let mut state = self.lock();
        loop {
            if done(&state) {
                return state;
            }
            if let Some(step) = self.claim(&mut state) {
                drop(state);
                self.run(step);
                state = self.lock();
            } else {
                state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        }
    }

    /// Batch `k` (inputs `k · batch ..`), once every image of it is decoded: the images in
    /// order, and the network input of those that decoded; the calling thread runs steps while
    /// it waits.
    pub fn take(&self, k: usize) -> (Vec<Prepared>, Option<InputBatch>) {
        let range = k * self.batch..((k + 1) * self.batch).min(self.inputs.len());
        self.allow(range.end);
        let mut state = self.help_until(|s| range.clone().all(|i| s.decoded.contains_key(&i)));
        let images = range
            .map(|i| {
                state
                    .decoded
                    .remove(&i)
                    .expect("all decoded (waited for above)")
            })
            .collect();
        // Every step of the batch dropped its reference before recording its image.
        let inputs = state
            .batches
            .remove(&k)
            .and_then(Arc::into_inner)
            .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()));
        (images, inputs)
    }

    /// Queues the maps of a batch the network has run. While more than [`MAX_WAITING_MAPS`]
    /// wait, the calling thread makes maps first.
    pub fn push_maps(&self, images: Vec<Decoded>, logits: Logits) {
        let n = images.len();
        let batch: Mapped = Arc::new((images, logits));
        let mut state = self.lock();
        state.maps.extend((0..n).map(|i| (batch.clone(), i)));
        drop(state);
        self.changed.notify_all();
        while self.lock().maps.len() > MAX_WAITING_MAPS && self.step() {}
    }

    /// No more batches will come: stops the decoding, makes the maps still waiting (the calling
    /// thread helps), then lets the writing thread finish.
    pub fn finish(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
        let mut state = self.help_until(|s| s.maps.is_empty() && s.running == 0);
        state.outcomes = None;
        drop(state);
        self.changed.notify_all();
    }

    /// Gives up what is still waiting (after a panic of the network's thread) so that the
    /// workers and the writing thread end.
    pub fn abandon(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.maps.clear();
        state.outcomes = None;
        drop(state);
        self.changed.notify_all();
    }

    /// A background worker: runs steps until [`Background::finish`] has run.
    pub fn work(&self) {
        // Once closed with no outcomes left, `claim` has nothing to give either.
        drop(self.help_until(|s| s.closed && s.outcomes.is_none()));
    }
}
