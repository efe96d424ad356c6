//! Work that splits by rows, spread over helper engines: on the CPU a browser page runs one
//! engine per core (Web Workers, no shared memory needed), each with its own copy of the model.
//!
//! The rows of a job (an encoder's logits or pooled features for a list of texts) are cut into
//! chunks up front; every lane (this engine, and each helper) takes the next chunk when it is
//! free, and the rows come back in place. A chunk is computed by the same code with the same
//! padding wherever it runs ([`chunk_rows`]), so the result does not depend on how many helpers
//! there are or which of them took what: bit for bit the rows one engine alone gives. A helper
//! that fails is left out and its chunk goes to another lane.
//!
//! The helpers themselves are behind [`Helpers`]: Web Workers in the browser
//! (`worker::helpers`), models in the same process in native tests ([`InProcess`]).

#[cfg(feature = "engine")]
use std::cell::{Cell, RefCell};
#[cfg(feature = "engine")]
use std::collections::VecDeque;
#[cfg(feature = "engine")]
use std::future::Future;
#[cfg(feature = "engine")]
use std::pin::Pin;
#[cfg(feature = "engine")]
use std::rc::Rc;
#[cfg(feature = "engine")]
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(feature = "engine")]
use burn::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "engine")]
use crate::clock::{Breather, BREATHE_EVERY_MS};
#[cfg(feature = "engine")]
use crate::data::Text;
#[cfg(feature = "engine")]
use crate::device::pad_multiple;
#[cfg(feature = "engine")]
use crate::error::Error;
#[cfg(feature = "engine")]
use crate::hub::ModelFiles;
#[cfg(feature = "engine")]
use crate::model::bert::{EncoderInput, SequenceClassifier};
use crate::model::config::Pooling;
#[cfg(feature = "engine")]
use crate::model::read_f32;
#[cfg(feature = "engine")]
use crate::pipelines::checkpoint_pooling;
use crate::prompt::LabelScorer;
#[cfg(feature = "engine")]
use crate::prompt::LanguageModel;
#[cfg(feature = "engine")]
use crate::text::TextTokenizer;
#[cfg(feature = "engine")]
use crate::train::{classifier_for_training, Mode, TrainingArgs};

/// A future that borrows what it runs on (one thread: not `Send`).
#[cfg(feature = "engine")]
pub type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// What each text becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RowsOf {
    /// The classifier's logits.
    Logits,
    /// The pooled features its head reads ([`SequenceClassifier::features`]).
    Features,
    /// A language model's label scoring: the best label's index and whether the text was cut
    /// (1 or 0), two values per text.
    Labels,
}

/// How a helper builds its model from the files: as the engine built the one it computes with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum Build {
    /// A `*ForSequenceClassification` checkpoint with its head (as `TextClassifier::load`).
    Checkpoint,
    /// The classifier fine-tuning starts from ([`classifier_for_training`]) for these labels,
    /// pooling and seed (a fresh head and pooler are drawn from the seed).
    Training {
        labels: Vec<String>,
        pooling: Pooling,
        seed: u64,
    },
    /// A GPT-2 checkpoint scoring labels with this scorer (its calibration is computed anew).
    Scorer(LabelScorer),
}

/// Where a helper finds a model's files.
#[derive(Debug, Clone)]
#[cfg(feature = "engine")]
pub enum Files {
    /// Sent with the replica.
    Bytes(Rc<ModelFiles>),
    /// Read from browser storage by key ([`crate::hub::StoreKey::key`]): no copy of a kept
    /// model stays in this engine for the helpers (the browser only). `bytes`: its weights'.
    Stored { key: String, bytes: usize },
}

#[cfg(feature = "engine")]
impl Files {
    /// The size of the model's weights file.
    pub fn weight_bytes(&self) -> usize {
        match self {
            Files::Bytes(files) => files.weights_bytes() as usize,
            Files::Stored { bytes, .. } => *bytes,
        }
    }
}

/// What a helper needs to compute rows exactly as this engine does: the model's files, how to
/// build it, what rows and the longest sequence. Each has its own version number, so a helper
/// that holds it already is not sent it again.
#[cfg(feature = "engine")]
pub struct Replica {
    pub version: u64,
    pub files: Files,
    pub build: Build,
    pub rows: RowsOf,
    pub max_length: usize,
}

#[cfg(feature = "engine")]
static VERSIONS: AtomicU64 = AtomicU64::new(1);

#[cfg(feature = "engine")]
impl Replica {
    pub fn new(files: Files, build: Build, rows: RowsOf, max_length: usize) -> Rc<Self> {
        Rc::new(Self {
            version: VERSIONS.fetch_add(1, Ordering::Relaxed),
            files,
            build,
            rows,
            max_length,
        })
    }
}

/// What computes the rows of a chunk: this engine's model, or a helper's copy.
#[cfg(feature = "engine")]
pub trait Rows {
    /// The rows of one chunk, flat.
    fn rows<'a>(&'a self, texts: &'a [Text]) -> LocalFuture<'a, Result<Vec<f32>, Error>>;
}

/// An encoder lane: the classifier, its tokenizer, and what rows it gives.
#[cfg(feature = "engine")]
pub struct Lane<'a> {
    pub model: &'a SequenceClassifier,
    pub tokenizer: &'a TextTokenizer,
    pub rows: RowsOf,
    pub max_length: usize,
    pub device: &'a Device,
}

#[cfg(feature = "engine")]
impl Rows for Lane<'_> {
    /// `[texts, width]` flat.
    fn rows<'a>(&'a self, texts: &'a [Text]) -> LocalFuture<'a, Result<Vec<f32>, Error>> {
        Box::pin(async move {
            let refs: Vec<&str> = texts.iter().map(|t| &**t).collect();
            chunk_rows(
                self.model,
                self.tokenizer,
                &refs,
                self.max_length,
                self.rows,
                self.device,
            )
            .await
        })
    }
}

/// A label-scoring lane: a language model and a prepared scorer (calibration computed).
#[cfg(feature = "engine")]
pub struct ScorerLane<'a> {
    pub lm: &'a LanguageModel,
    pub scorer: &'a LabelScorer,
}

#[cfg(feature = "engine")]
impl Rows for ScorerLane<'_> {
    /// `[best label, cut]` per text.
    fn rows<'a>(&'a self, texts: &'a [Text]) -> LocalFuture<'a, Result<Vec<f32>, Error>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(texts.len() * 2);
            for text in texts {
                let scores = self.scorer.score_prepared(self.lm, text).await?;
                out.push(scores.best as f32);
                out.push(f32::from(u8::from(scores.truncated)));
            }
            Ok(out)
        })
    }
}

/// The rows of one chunk of texts padded as one batch, flat: what every lane runs, so a chunk
/// gives the same values wherever it runs.
#[cfg(feature = "engine")]
pub async fn chunk_rows(
    model: &SequenceClassifier,
    tokenizer: &TextTokenizer,
    texts: &[&str],
    max_length: usize,
    rows: RowsOf,
    device: &Device,
) -> Result<Vec<f32>, Error> {
    let encoded = tokenizer.encode_batch_padded(texts, max_length, pad_multiple(device))?;
    let input = EncoderInput::new(&encoded, device);
    let out = match rows {
        RowsOf::Logits => model.forward(&input),
        RowsOf::Features => model.features(&input),
        RowsOf::Labels => return Err(Error::usage("an encoder scores no labels")),
    };
    Ok(read_f32(out).await?)
}

/// A replica built on a helper: its own model, ready to compute rows.
#[cfg(feature = "engine")]
pub struct Built {
    pub version: u64,
    model: Model,
}

#[allow(clippy::large_enum_variant)]
#[cfg(feature = "engine")]
enum Model {
    Encoder {
        model: SequenceClassifier,
        tokenizer: TextTokenizer,
        rows: RowsOf,
        max_length: usize,
        device: Device,
    },
    Scorer {
        lm: LanguageModel,
        scorer: LabelScorer,
    },
}

#[cfg(feature = "engine")]
impl Built {
    /// Builds the model a replica describes from its files.
    pub async fn build(
        version: u64,
        files: &ModelFiles,
        build: &Build,
        rows: RowsOf,
        max_length: usize,
        device: &Device,
    ) -> Result<Self, Error> {
        let encoder = |model: SequenceClassifier| -> Result<Model, Error> {
            Ok(Model::Encoder {
                model,
                tokenizer: files.tokenizer()?,
                rows,
                max_length,
                device: device.clone(),
            })
        };
        let model = match build {
            Build::Checkpoint => {
                let config = files.config()?;
                let pooling = checkpoint_pooling(&config);
                let model = SequenceClassifier::from_checkpoint(
                    files.checkpoint()?,
                    &config,
                    pooling,
                    device,
                    Default::default(),
                )?;
                encoder(model)?
            }
            Build::Training {
                labels,
                pooling,
                seed,
            } => {
                // Dropout does not act at inference: only the seed (of a fresh head or pooler)
                // matters, as in the run's own model.
                let args = TrainingArgs {
                    seed: *seed,
                    dropout: false,
                    ..TrainingArgs::defaults_for(Mode::Head)
                };
                encoder(classifier_for_training(files, labels, &args, *pooling, device)?.0)?
            }
            Build::Scorer(scorer) => {
                // Helpers run on the CPU: no binding limit.
                let lm = LanguageModel::load(files, device, u64::MAX)?;
                let mut scorer = scorer.clone();
                scorer.prepare(&lm).await?;
                Model::Scorer { lm, scorer }
            }
        };
        Ok(Self { version, model })
    }

    /// [`Built::build`] of a replica whose files come with it (natively, the only kind).
    pub async fn of(replica: &Replica, device: &Device) -> Result<Self, Error> {
        let Files::Bytes(files) = &replica.files else {
            return Err(Error::usage("browser storage exists only in the browser"));
        };
        Self::build(
            replica.version,
            files,
            &replica.build,
            replica.rows,
            replica.max_length,
            device,
        )
        .await
    }
}

#[cfg(feature = "engine")]
impl Rows for Built {
    fn rows<'a>(&'a self, texts: &'a [Text]) -> LocalFuture<'a, Result<Vec<f32>, Error>> {
        match &self.model {
            Model::Encoder {
                model,
                tokenizer,
                rows,
                max_length,
                device,
            } => Box::pin(async move {
                let lane = Lane {
                    model,
                    tokenizer,
                    rows: *rows,
                    max_length: *max_length,
                    device,
                };
                lane.rows(texts).await
            }),
            Model::Scorer { lm, scorer } => {
                Box::pin(async move { ScorerLane { lm, scorer }.rows(texts).await })
            }
        }
    }
}

/// Other engines that compute rows: each holds (or is sent) a replica of the model.
#[cfg(feature = "engine")]
pub trait Helpers {
    /// How many helpers can take work now.
    fn count(&self) -> usize;
    /// How many of them may hold `replica` (a big model may not fit in memory on all).
    fn usable(&self, _replica: &Replica) -> usize {
        self.count()
    }
    /// The rows of `texts` on helper `i`, with `replica` (sent to it first unless it holds it).
    fn rows<'a>(
        &'a self,
        i: usize,
        replica: &'a Rc<Replica>,
        texts: Vec<Text>,
    ) -> LocalFuture<'a, Result<Vec<f32>, Error>>;
}

/// Helpers, with the files of the model a fine-tuning run starts from: what the run needs to
/// spread its feature extraction (head mode) and its evaluations.
#[cfg(feature = "engine")]
pub struct Sharing {
    pub helpers: Rc<dyn Helpers>,
    pub base: Rc<ModelFiles>,
}

/// How many requests each helper may have in flight: a second one waits on the helper, so it
/// starts at once when the first is done instead of after this engine's own chunk (whose
/// computation holds this thread, and the helper's answer with it). Only while there are more
/// chunks left than lanes: at the end every lane must get one.
#[cfg(feature = "engine")]
const IN_FLIGHT: usize = 2;

/// What a spread reports to and checks.
#[cfg(feature = "engine")]
pub trait Watch {
    /// Rows finished so far (of every chunk).
    fn done(&mut self, rows: usize);
    fn cancelled(&self) -> bool {
        false
    }
}

/// Counts nothing and never cancels.
#[cfg(feature = "engine")]
pub struct Unwatched;

#[cfg(feature = "engine")]
impl Watch for Unwatched {
    fn done(&mut self, _: usize) {}
}

/// The rows of every chunk (each `[chunk, width]` flat, in the chunks' order), computed on
/// `local` and, when given helpers with a replica of the model, on them at once. Chunks are
/// taken from the last (with [`chunks_by_length`], the longest texts) to the first. A cancel
/// stops handing chunks out: those computed are kept.
#[cfg(feature = "engine")]
pub async fn spread(
    local: &dyn Rows,
    helpers: Option<(&dyn Helpers, &Rc<Replica>)>,
    chunks: &[Vec<Text>],
    watch: &mut dyn Watch,
) -> Result<Spread, Error> {
    let queue: RefCell<VecDeque<usize>> = RefCell::new((0..chunks.len()).collect());
    let results: RefCell<Vec<Option<Vec<f32>>>> = RefCell::new(vec![None; chunks.len()]);
    let rows_done = Cell::new(0usize);
    let stop = Cell::new(false);
    let watch = RefCell::new(watch);
    let finish = |c: usize, values: Vec<f32>| {
        results.borrow_mut()[c] = Some(values);
        rows_done.set(rows_done.get() + chunks[c].len());
        watch.borrow_mut().done(rows_done.get());
    };
    let helper_count = helpers.map_or(0, |(h, r)| h.usable(r));
    let lanes = helpers.map_or(0, |_| helper_count * IN_FLIGHT);
    let helper_lanes = (0..lanes).filter_map(|lane| {
        let (helpers, replica) = helpers?;
        let (queue, stop, finish) = (&queue, &stop, &finish);
        Some(async move {
            let i = lane % helper_count;
            let prefetch = lane >= helper_count;
            loop {
                if stop.get() || (prefetch && queue.borrow().len() <= helper_count + 1) {
                    return;
                }
                // The longest texts first: the last chunks taken are the short ones, so the
                // lanes finish close together.
                let Some(c) = queue.borrow_mut().pop_back() else {
                    return;
                };
                match helpers.rows(i, replica, chunks[c].clone()).await {
                    Ok(values) => finish(c, values),
                    Err(e) => {
                        // Another lane does it; this helper takes no more of this job.
                        queue.borrow_mut().push_back(c);
                        warn(&format!(
                            "a helper engine failed, its work goes on here: {e}"
                        ));
                        return;
                    }
                }
            }
        })
    });
    let helper_lanes: Vec<_> = helper_lanes.collect();
    let here = async {
        // Alone, this engine lets the host run only every few ms (to see a cancel): a turn per
        // chunk would slow a GPU's short chunks. With helpers it does after every chunk, so
        // that their answers are read and their next chunks sent at once.
        let mut breather = Breather::new(BREATHE_EVERY_MS);
        loop {
            if watch.borrow().cancelled() {
                // The helpers' batches in hand still come in (the join waits for them).
                stop.set(true);
                return Ok(());
            }
            let next = queue.borrow_mut().pop_back();
            match next {
                Some(c) => match local.rows(&chunks[c]).await {
                    Ok(values) => {
                        finish(c, values);
                        if helper_count > 0 {
                            breathe().await;
                        } else {
                            breather.breathe().await;
                        }
                    }
                    Err(e) => {
                        stop.set(true);
                        return Err(e);
                    }
                },
                // Every chunk is taken: wait for the helpers (one may fail and give its back).
                None if results.borrow().iter().any(Option::is_none) => breathe().await,
                None => return Ok(()),
            }
        }
    };
    // The helpers' lanes first: they take their chunks and send them off before this engine
    // starts computing its own (which holds the thread).
    let (_, local_result) =
        futures::future::join(futures::future::join_all(helper_lanes), here).await;
    local_result?;
    Ok(Spread {
        rows: results.into_inner(),
        cancelled: stop.get(),
    })
}

/// What [`spread`] computed.
#[cfg(feature = "engine")]
pub struct Spread {
    /// Each chunk's rows; `None` for those not computed (after a cancel).
    pub rows: Vec<Option<Vec<f32>>>,
    pub cancelled: bool,
}

#[cfg(feature = "engine")]
impl Spread {
    /// Every chunk's rows, or `None` after a cancel.
    pub fn complete(self) -> Option<Vec<Vec<f32>>> {
        if self.cancelled {
            return None;
        }
        self.rows.into_iter().collect()
    }
}

/// Lets the helpers' answers in: a browser task turn (messages arrive as tasks); natively one
/// turn of the executor.
#[cfg(feature = "engine")]
async fn breathe() {
    #[cfg(target_arch = "wasm32")]
    crate::js::yield_now().await;
    #[cfg(not(target_arch = "wasm32"))]
    YieldOnce(false).await;
}

#[cfg(not(target_arch = "wasm32"))]
#[cfg(feature = "engine")]
struct YieldOnce(bool);

#[cfg(not(target_arch = "wasm32"))]
#[cfg(feature = "engine")]
impl Future for YieldOnce {
    type Output = ();
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        if self.0 {
            std::task::Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
}

#[cfg(feature = "engine")]
fn warn(message: &str) {
    #[cfg(target_arch = "wasm32")]
    web_sys::console::warn_1(&message.into());
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{message}");
}

/// Texts cut into chunks of `size` in order of token length (short texts pad little), with the
/// order: chunk `c` holds the texts `order[c * size..]`.
#[cfg(feature = "engine")]
pub fn chunks_by_length(
    tokenizer: &TextTokenizer,
    texts: &[Text],
    max_length: usize,
    size: usize,
) -> Result<(Vec<usize>, Vec<Vec<Text>>), Error> {
    let order = crate::train::batches::by_length(tokenizer, texts, max_length)?;
    let chunks = order
        .chunks(size.max(1))
        .map(|c| c.iter().map(|&i| texts[i].clone()).collect())
        .collect();
    Ok((order, chunks))
}

/// Helpers in this process, on the same device: tests check with them that spreading gives the
/// rows one engine gives, and that a failing helper changes nothing.
#[cfg(feature = "engine")]
pub struct InProcess {
    copies: Vec<RefCell<Option<Rc<Built>>>>,
    device: Device,
    /// Helper 0 fails after this many chunks (a helper engine that dies mid-job).
    pub fail_after: Cell<Option<usize>>,
    /// Chunks each helper computed.
    pub served: Vec<Cell<usize>>,
    /// Replicas sent (a helper holding the version is not sent it again).
    pub sent: Cell<usize>,
}

#[cfg(feature = "engine")]
impl InProcess {
    pub fn new(count: usize, device: &Device) -> Self {
        Self {
            copies: (0..count).map(|_| RefCell::new(None)).collect(),
            device: device.clone(),
            fail_after: Cell::new(None),
            served: (0..count).map(|_| Cell::new(0)).collect(),
            sent: Cell::new(0),
        }
    }
}

#[cfg(feature = "engine")]
impl Helpers for InProcess {
    fn count(&self) -> usize {
        self.copies.len()
    }
    fn rows<'a>(
        &'a self,
        i: usize,
        replica: &'a Rc<Replica>,
        texts: Vec<Text>,
    ) -> LocalFuture<'a, Result<Vec<f32>, Error>> {
        Box::pin(async move {
            if i == 0
                && self
                    .fail_after
                    .get()
                    .is_some_and(|n| self.served[0].get() >= n)
            {
                return Err(Error::usage("helper 0 stopped (on purpose)"));
            }
            let holds = self.copies[i].borrow().as_ref().map(|c| c.version);
            if holds != Some(replica.version) {
                self.sent.set(self.sent.get() + 1);
                let built = Built::of(replica, &self.device).await?;
                *self.copies[i].borrow_mut() = Some(Rc::new(built));
            }
            // Another lane's turn first, as a helper in another thread would interleave.
            breathe().await;
            let copy = self.copies[i].borrow().clone().expect("built above");
            let values = copy.rows(&texts).await?;
            self.served[i].set(self.served[i].get() + 1);
            Ok(values)
        })
    }
}
