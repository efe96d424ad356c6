//! The Fine-tune page's state and what the page asks of the engine: reading the data files,
//! training, exporting and using the trained model.

use leptos::prelude::*;
use wasm_bindgen::JsValue;

use crate::protocol::{Event, Mode, Request, RunInfo, TableOptions, TablePreview, TrainingArgs};
use crate::ui::files;
use crate::ui::request::Call;
use crate::ui::state::{AppState, Upgrade};

use super::run::Run;

/// The sample dataset, served next to the page.
const SAMPLE: &str = "./static/sample_movie_reviews.csv";
const SAMPLE_NAME: &str = "sample_movie_reviews.csv";

/// Where a table file came from, to read it again for a restarted engine.
#[derive(Clone)]
enum Origin {
    File(web_sys::File),
    Sample,
}

/// A table file the engine keeps (the training data, or the separate test file): its preview
/// and the reading of it.
#[derive(Clone, Copy)]
pub struct TableFile {
    pub preview: RwSignal<Option<TablePreview>>,
    pub call: Call,
    origin: StoredValue<Option<Origin>, LocalStorage>,
}

impl TableFile {
    fn new() -> Self {
        Self {
            preview: RwSignal::new(None),
            call: Call::new(),
            origin: StoredValue::new_local(None),
        }
    }
}

/// Everything the Fine-tune page shows and edits; its methods are what the page does.
#[derive(Clone, Copy)]
pub struct FineTuneState {
    pub app: AppState,
    pub data: TableFile,
    /// Whether the data file's first row is its header: `None` detects it.
    pub header: RwSignal<Option<bool>>,
    /// Evaluate on a separate test file instead of a split of the training file.
    pub separate_test: RwSignal<bool>,
    pub test: TableFile,
    pub text_column: RwSignal<usize>,
    pub label_column: RwSignal<usize>,
    pub args: RwSignal<TrainingArgs>,
    pub test_fraction: RwSignal<f64>,
    pub run: RwSignal<Option<Run>>,
    /// Training, shown under the settings.
    pub train: Call,
    /// Export and "use on the Classify page"; their errors show with training's.
    pub actions: Call,
    /// What export or "use" did.
    pub saved: RwSignal<Option<String>>,
    /// The training runs kept in browser storage, and the bytes they take.
    pub runs: RwSignal<(Vec<RunInfo>, u64)>,
}

impl FineTuneState {
    pub fn new(app: AppState) -> Self {
        let train = Call::new();
        let this = Self {
            app,
            data: TableFile::new(),
            header: RwSignal::new(None),
            separate_test: RwSignal::new(false),
            test: TableFile::new(),
            text_column: RwSignal::new(0),
            label_column: RwSignal::new(1),
            args: RwSignal::new(TrainingArgs::default()),
            test_fraction: RwSignal::new(0.2),
            run: RwSignal::new(None),
            train,
            actions: Call::reporting_to(train.error()),
            saved: RwSignal::new(None),
            runs: RwSignal::new((Vec::new(), 0)),
        };
        Effect::new(move |_| {
            if app.restarted.get() > 0 {
                untrack(|| this.after_restart());
            }
        });
        this
    }

    /// A restarted engine holds none of the data: the files read are read again (keeping the
    /// columns chosen), and a trained model not yet kept is gone.
    fn after_restart(self) {
        for test in [false, true] {
            let table = self.table(test);
            if table.preview.with_untracked(Option::is_none) {
                continue;
            }
            // Not in the engine until it is read again (training waits for it).
            table.preview.set(None);
            self.reread(test, true);
        }
        self.run.update(|r| {
            if let Some(r) = r {
                r.lose_model();
            }
        });
    }

    fn table(self, test: bool) -> TableFile {
        if test {
            self.test
        } else {
            self.data
        }
    }

    /// Has the engine read `bytes` as the training data, or (`test`) as the test file; the
    /// columns guessed are taken unless `keep_columns`.
    fn parse(self, name: String, bytes: JsValue, test: bool, keep_columns: bool) {
        let table = self.table(test);
        table.preview.set(None);
        let (text_column, label_column) = (self.text_column, self.label_column);
        table.call.send(
            Request::ParseTable {
                name,
                options: TableOptions {
                    has_header: if test {
                        None
                    } else {
                        self.header.get_untracked()
                    },
                    ..TableOptions::default()
                },
                test,
            },
            Some(bytes),
            move |event, _| {
                if let Event::Table { preview } = event {
                    if !test && !keep_columns {
                        text_column.set(preview.text_column);
                        label_column.set(preview.label_column);
                    }
                    table.preview.set(Some(preview));
                }
            },
        );
    }

    /// Reads a file the user picked or dropped, as the training data or (`test`) the test file.
    pub fn open(self, file: web_sys::File, test: bool) {
        if !test {
            self.header.set(None);
        }
        self.table(test)
            .origin
            .set_value(Some(Origin::File(file.clone())));
        self.read(file, test, false);
    }

    fn read(self, file: web_sys::File, test: bool, keep_columns: bool) {
        files::read_then(file, move |name, bytes| match bytes {
            Ok(bytes) => self.parse(name, bytes, test, keep_columns),
            Err(e) => self.table(test).call.fail(format!("{name}: {e}")),
        });
    }

    pub fn open_sample(self) {
        self.header.set(None);
        self.data.origin.set_value(Some(Origin::Sample));
        self.read_sample(false);
    }

    fn read_sample(self, keep_columns: bool) {
        wasm_bindgen_futures::spawn_local(async move {
            match files::fetch(SAMPLE, "the sample dataset").await {
                Ok(bytes) => self.parse(SAMPLE_NAME.into(), bytes, false, keep_columns),
                Err(e) => self.data.call.fail(e),
            }
        });
    }

    /// Reads the data file again with its first row taken as the header (`Some(true)`), as
    /// data (`Some(false)`), or as detected (`None`).
    pub fn set_header(self, header: Option<bool>) {
        self.header.set(header);
        self.reread(false, false);
    }

    /// Reads the data file (or, with `test`, the test file) again from where it came from.
    fn reread(self, test: bool, keep_columns: bool) {
        match self.table(test).origin.get_value() {
            Some(Origin::File(file)) => self.read(file, test, keep_columns),
            Some(Origin::Sample) => self.read_sample(keep_columns),
            None => {}
        }
    }

    /// Switches the training mode, with that mode's defaults.
    pub fn set_mode(self, mode: Mode) {
        self.args.update(|a| a.switch_mode(mode));
    }

    /// Whether a run is under way (tracked).
    pub fn running(self) -> bool {
        self.run.with(|r| r.as_ref().is_some_and(Run::running))
    }

    /// Whether a trained model can be exported or used (tracked).
    pub fn has_model(self) -> bool {
        self.run.with(|r| r.as_ref().is_some_and(Run::has_model))
    }

    /// Whether training can start: data and a base model, and the test file when asked for.
    pub fn can_start(self) -> bool {
        !self.running()
            && self.data.preview.with(Option::is_some)
            && self.app.base.with(Option::is_some)
            && !(self.separate_test.get() && self.test.preview.with(Option::is_none))
    }

    /// Offers the run as it is set up as a Python script for transformers' Trainer (a zip).
    pub fn export_script(self) {
        let args = self.args.get_untracked();
        if let Err(e) = args.validate() {
            self.train.fail(e);
            return;
        }
        let request = Request::ExportScript {
            text_column: self.text_column.get_untracked(),
            label_column: self.label_column.get_untracked(),
            test_fraction: self.test_fraction.get_untracked(),
            split_seed: args.seed,
            separate_test: self.separate_test.get_untracked(),
            args,
        };
        let saved = self.saved;
        self.actions.download(request, move |file_name| {
            saved.set(Some(format!(
                "Saved {file_name}: run it where the GPUs are"
            )))
        });
    }

    /// The data file (and the separate test file) as the engine keeps them with a run's
    /// checkpoints: the files picked, or the sample's bytes.
    /// Waits until the data files given again to a fresh engine are read (or failed).
    async fn tables_read(self) {
        let tables = if self.separate_test.get_untracked() {
            vec![self.data, self.test]
        } else {
            vec![self.data]
        };
        for table in tables {
            if table.origin.with_value(Option::is_none) {
                continue;
            }
            // Bounded: whatever keeps it unread, the run then starts and says what is missing.
            for _ in 0..1200 {
                if table.preview.with_untracked(Option::is_some)
                    || table.call.error().with_untracked(Option::is_some)
                {
                    break;
                }
                gloo::timers::future::TimeoutFuture::new(100).await;
            }
        }
    }

    async fn table_payload(self) -> Option<JsValue> {
        let list = js_sys::Array::new();
        let tables = if self.separate_test.get_untracked() {
            vec![self.data, self.test]
        } else {
            vec![self.data]
        };
        for table in tables {
            match table.origin.get_value()? {
                Origin::File(file) => list.push(&file),
                Origin::Sample => {
                    list.push(&files::fetch(SAMPLE, "the sample dataset").await.ok()?)
                }
            };
        }
        Some(list.into())
    }

    /// Asks the engine for the kept runs.
    pub fn refresh_runs(self) {
        let runs = self.runs;
        self.actions.send(Request::ListRuns, None, move |event, _| {
            if let Event::Runs { runs: list, bytes } = event {
                runs.set((list, bytes));
            }
        });
    }

    pub fn delete_run(self, id: String) {
        let runs = self.runs;
        self.actions
            .send(Request::DeleteRun { id }, None, move |event, _| {
                if let Event::Runs { runs: list, bytes } = event {
                    runs.set((list, bytes));
                }
            });
    }

    /// Resumes a kept run: its base model, data and settings come back, and training goes on
    /// from its last checkpoint.
    pub fn resume(self, info: RunInfo) {
        self.saved.set(None);
        self.args.set(info.args.clone());
        self.text_column.set(info.text_column);
        self.label_column.set(info.label_column);
        self.test_fraction.set(info.test_fraction);
        self.separate_test.set(info.separate_test);
        self.launch(Request::ResumeRun { id: info.id }, None);
    }

    pub fn start(self) {
        self.saved.set(None);
        let args = self.args.get_untracked();
        if let Err(e) = args.validate() {
            self.train.fail(e);
            return;
        }
        let request = Request::Train {
            text_column: self.text_column.get_untracked(),
            label_column: self.label_column.get_untracked(),
            test_fraction: self.test_fraction.get_untracked(),
            split_seed: args.seed,
            separate_test: self.separate_test.get_untracked(),
            args,
        };
        self.run.set(Some(Run::new(js_sys::Date::now())));
        wasm_bindgen_futures::spawn_local(async move {
            // Where the WebGPU engine is about to take over, the run waits for it; it is given
            // the data files again first.
            let restarted = self.app.restarted.get_untracked();
            let waiting = |on: bool| {
                self.run.update(|r| {
                    if let Some(r) = r {
                        r.waiting = on;
                        r.started_ms = js_sys::Date::now();
                    }
                })
            };
            waiting(self.app.upgrade.get_untracked() == Upgrade::Loading);
            self.app.settled().await;
            if self.app.restarted.get_untracked() != restarted {
                self.tables_read().await;
            }
            waiting(false);
            let payload = self.table_payload().await;
            self.launch(request, payload);
        });
    }

    /// Sends a training request (a new run, or a resumed one) and follows its events.
    fn launch(self, request: Request, payload: Option<JsValue>) {
        let run = self.run;
        let app = self.app;
        // The model it makes lives in this engine only: the WebGPU engine must not take over
        // by itself and lose it.
        app.made.set(true);
        if run.with_untracked(Option::is_none) || matches!(request, Request::ResumeRun { .. }) {
            run.set(Some(Run::new(js_sys::Date::now())));
        }
        self.train.send_with(
            request,
            payload,
            move |event, _| match event {
                Event::Loaded {
                    slot: crate::protocol::Slot::Base,
                    info,
                } => app.base.set(Some(info)),
                Event::Runs { runs, bytes } => self.runs.set((runs, bytes)),
                Event::Imported {
                    report,
                    train,
                    test,
                } => run.update(|r| {
                    if let Some(r) = r {
                        r.report = Some((report, train, test))
                    }
                }),
                Event::Train { event } => run.update(|r| {
                    if let Some(r) = r {
                        r.apply(event)
                    }
                }),
                _ => {}
            },
            move |_| {
                run.update(|r| {
                    // Refused before anything ran (bad data, a missing model): no run to show.
                    if r.as_ref().is_some_and(|r| r.phase.is_none()) {
                        *r = None;
                    } else if let Some(r) = r {
                        r.fail();
                    }
                })
            },
        );
    }

    pub fn cancel(self) {
        self.train.cancel();
    }

    /// Whether the trained model came from a LoRA run (tracked).
    pub fn lora_run(self) -> bool {
        self.run
            .with(|r| r.as_ref().is_some_and(|r| r.mode == Some(Mode::Lora)))
    }

    /// Offers the trained model as a zip of its Hugging Face folder, or (`adapter`) of its PEFT
    /// adapter folder.
    pub fn export(self, adapter: bool) {
        let saved = self.saved;
        self.actions
            .download(Request::ExportTrained { adapter }, move |file_name| {
                saved.set(Some(format!("Saved {file_name}")))
            });
    }

    /// Applies a PEFT LoRA adapter (the picked files) to the base model and puts the result on
    /// the Classify page (and in browser storage).
    pub fn apply_adapter(self, files: wasm_bindgen::JsValue) {
        let (app, saved) = (self.app, self.saved);
        saved.set(None);
        app.made.set(true);
        self.actions
            .send(Request::ApplyAdapter, Some(files), move |event, _| {
                if let Event::Loaded { info, .. } = event {
                    saved.set(Some(format!(
                        "The adapter is applied: \"{}\" is on the Classify page{}",
                        info.name,
                        match &info.storage_warning {
                            None => " and kept in browser storage".to_string(),
                            Some(w) => format!(", but {w}"),
                        }
                    )));
                    app.classifier.set(Some(info));
                    app.refresh_stored();
                }
            });
    }

    /// Puts the trained model on the Classify page (and in browser storage).
    pub fn use_model(self) {
        let app = self.app;
        let saved = self.saved;
        let name = format!(
            "{} fine-tuned {}",
            app.base.get_untracked().map(|b| b.name).unwrap_or_default(),
            js_sys::Date::new_0()
                .to_iso_string()
                .as_string()
                .unwrap_or_default()
                .get(..16)
                .unwrap_or("")
        );
        self.actions
            .send(Request::UseTrained { name }, None, move |event, _| {
                if let Event::Loaded { info, .. } = event {
                    saved.set(Some(match &info.storage_warning {
                        None => format!(
                            "\"{}\" is on the Classify page and kept in browser storage",
                            info.name
                        ),
                        Some(w) => format!(
                            "\"{}\" is on the Classify page, but {w}: export it to keep it",
                            info.name
                        ),
                    }));
                    app.classifier.set(Some(info));
                    app.refresh_stored();
                }
            });
    }
}
