//! The app shell: header, navigation, backend status line, and the page router (by URL hash).
//! With `?embed=classify|prompt` only the widget shows.

use leptos::prelude::*;

use super::classify::ClassifyPage;
use super::client;
use super::finetune::FineTunePage;
use super::models::ModelsPage;
use super::prompt::PromptPage;
use super::similarity::SimilarityPage;
use super::state::{query_param, AppState, Upgrade};
use super::widget::Widget;
use crate::protocol::{Backend, Event};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Classify,
    FineTune,
    Prompt,
    Similarity,
    Models,
}

impl Page {
    pub const ALL: [Page; 5] = [
        Page::Classify,
        Page::FineTune,
        Page::Prompt,
        Page::Similarity,
        Page::Models,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Page::Classify => "Classify",
            Page::FineTune => "Fine-tune",
            Page::Prompt => "Prompt",
            Page::Similarity => "Similarity",
            Page::Models => "Models",
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            Page::Classify => "classify",
            Page::FineTune => "fine-tune",
            Page::Prompt => "prompt",
            Page::Similarity => "similarity",
            Page::Models => "models",
        }
    }

    fn from_hash(hash: &str) -> Page {
        let slug = hash.trim_start_matches('#').trim_start_matches('/');
        Page::ALL
            .into_iter()
            .find(|p| p.slug() == slug)
            .unwrap_or(Page::Classify)
    }
}

fn current_hash() -> String {
    web_sys::window()
        .and_then(|w| w.location().hash().ok())
        .unwrap_or_default()
}

#[component]
fn StatusLine() -> impl IntoView {
    let state = super::state::use_state();
    let upgrade = move || state.upgrade.get();
    view! {
        <p id="backend-status" class="status"
            data-backend=move || match (state.backend.get(), state.engine_error.get()) {
                (_, Some(_)) => "error",
                (Some(Backend::WebGpu { .. }), None) => "webgpu",
                (Some(Backend::Cpu { .. }), None) => "cpu",
                (None, None) => "probing",
            }
            data-upgrade=move || match upgrade() {
                Upgrade::Loading => Some("loading"),
                Upgrade::Held(_) => Some("held"),
                Upgrade::None | Upgrade::Failed(_) => None,
            }>
            {move || match (state.backend.get(), state.engine_error.get()) {
                (_, Some(e)) => format!("Engine error: {e}"),
                (Some(b), None) => {
                    let shown = match (upgrade(), &b) {
                        (Upgrade::Loading, Backend::Cpu { .. }) => {
                            "CPU, while the WebGPU engine loads".to_string()
                        }
                        (Upgrade::Held(_), Backend::Cpu { .. }) => {
                            "CPU (the WebGPU engine is ready)".to_string()
                        }
                        (Upgrade::Failed(why), Backend::Cpu { .. }) => {
                            format!("CPU (the WebGPU engine could not start: {why})")
                        }
                        _ => b.describe(),
                    };
                    match state.workers.get() {
                        1 => format!("Backend: {shown}"),
                        n => format!("Backend: {shown} · {n} engine workers"),
                    }
                }
                (None, None) => "Backend: starting the engine…".to_string(),
            }}
        </p>
        {move || match upgrade() {
            Upgrade::Held(why) => Some(view! {
                <p id="upgrade-notice" class="muted" role="status">
                    {format!("The WebGPU engine takes over {why}.")}" "
                    <button id="use-webgpu" class="secondary small"
                        on:click=move |_| state.try_upgrade(true)>"Switch to WebGPU now"</button>
                </p>
            }),
            _ => None,
        }}
        {move || state.source_notice.get().map(|n| view! { <p id="source-notice" class="warning">{n}</p> })}
        {move || state.engine_notice.get().map(|n| view! {
            <p id="engine-notice" class="warning" role="status">{n}" "
                <button class="secondary small" on:click=move |_| state.engine_notice.set(None)>"Dismiss"</button>
            </p>
        })}
    }
}

/// Debug (test) builds: `window.tunelabCrashEngine("panic" | "abort")` makes the engine fail
/// on purpose and resolves with the error its request ended with, so that a test can watch the
/// page recover; `window.tunelabCrashHelper(...)` makes the first helper engine fail when it is
/// next given a batch, and resolves once it is told.
#[cfg(debug_assertions)]
fn expose_crash_for_tests() {
    use crate::protocol::{Crash, Request};
    expose_crash("tunelabCrashEngine", |how| Request::Crash { how });
    expose_crash("tunelabCrashHelper", |how| Request::CrashHelper { how });

    fn expose_crash(name: &str, request: fn(Crash) -> Request) {
        use wasm_bindgen::prelude::*;
        let crash = Closure::<dyn Fn(String) -> js_sys::Promise>::new(move |how: String| {
            let how = if how == "abort" {
                Crash::Abort
            } else {
                Crash::Panic
            };
            js_sys::Promise::new(&mut |resolve, _| {
                client::send(request(how), None, move |event, _| {
                    let text = match event {
                        Event::Error { message } => message,
                        Event::Done => "done".into(),
                        _ => return,
                    };
                    let _ = resolve.call1(&JsValue::NULL, &text.into());
                });
            })
        });
        if let Some(w) = web_sys::window() {
            let _ = js_sys::Reflect::set(&w, &name.into(), crash.as_ref());
        }
        crash.forget();
    }
}

/// Debug (test) builds: `window.tunelabRequest(requestJson, payload?)` sends any request to the
/// engine and resolves with its events (`{ms, json}`, `ms` from `performance.now()` when each
/// arrived), or rejects with its error: the in-browser benchmarks time the engine with it.
#[cfg(debug_assertions)]
fn expose_requests_for_benchmarks() {
    use crate::protocol::Request;
    use wasm_bindgen::prelude::*;
    let request = Closure::<dyn Fn(String, JsValue) -> js_sys::Promise>::new(
        |json: String, payload: JsValue| {
            js_sys::Promise::new(&mut |resolve, reject| {
                let request: Request = match serde_json::from_str(&json) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = reject.call1(&JsValue::NULL, &e.to_string().into());
                        return;
                    }
                };
                let events = js_sys::Array::new();
                let payload = (!payload.is_undefined()).then(|| payload.clone());
                client::send(request, payload, move |event, _| {
                    let ms = web_sys::window()
                        .and_then(|w| w.performance())
                        .map_or(0.0, |p| p.now());
                    let record = js_sys::Object::new();
                    let _ = js_sys::Reflect::set(&record, &"ms".into(), &ms.into());
                    let text = serde_json::to_string(&event).unwrap_or_default();
                    let _ = js_sys::Reflect::set(&record, &"json".into(), &text.into());
                    events.push(&record);
                    match event {
                        Event::Done => {
                            let _ = resolve.call1(&JsValue::NULL, &events);
                        }
                        Event::Error { message } => {
                            let _ = reject.call1(&JsValue::NULL, &message.into());
                        }
                        _ => {}
                    }
                });
            })
        },
    );
    if let Some(w) = web_sys::window() {
        let _ = js_sys::Reflect::set(&w, &"tunelabRequest".into(), request.as_ref());
    }
    request.forget();
}

#[component]
pub fn App() -> impl IntoView {
    let state = AppState::new();
    provide_context(state);
    let on_unrouted = move |event, _| {
        if let Event::Error { message } = event {
            state.engine_error.set(Some(message));
        }
    };
    client::start(
        on_unrouted,
        move |reason| state.recover(reason),
        move |offered| state.probed(offered),
    );
    state.start_engine();
    #[cfg(debug_assertions)]
    expose_crash_for_tests();
    #[cfg(debug_assertions)]
    expose_requests_for_benchmarks();

    if let Some(kind) = query_param("embed") {
        return view! {
            <main class="embedded">
                <StatusLine />
                <Widget kind=kind model=query_param("model") />
            </main>
        }
        .into_any();
    }

    let page = RwSignal::new(Page::from_hash(&current_hash()));
    let on_hash = wasm_bindgen::closure::Closure::<dyn Fn()>::new(move || {
        page.set(Page::from_hash(&current_hash()))
    });
    if let Some(w) = web_sys::window() {
        w.set_onhashchange(Some(wasm_bindgen::JsCast::unchecked_ref(on_hash.as_ref())));
    }
    on_hash.forget();

    view! {
        <header class="topbar">
            <a class="brand" href="#/classify">"Tunelab"</a>
            <nav aria-label="Main">
                {Page::ALL.into_iter().map(|p| view! {
                    <a href=format!("#/{}", p.slug()) class:active=move || page.get() == p
                        aria-current=move || (page.get() == p).then_some("page")>{p.title()}</a>
                }).collect_view()}
            </nav>
        </header>
        <StatusLine />
        <main id="page" data-page=move || page.get().slug()>
            <h1>{move || page.get().title()}</h1>
            // Pages stay mounted so that work in progress (a training run, a download) survives
            // moving between them.
            <div hidden=move || page.get() != Page::Classify><ClassifyPage /></div>
            <div hidden=move || page.get() != Page::FineTune><FineTunePage /></div>
            <div hidden=move || page.get() != Page::Prompt><PromptPage /></div>
            <div hidden=move || page.get() != Page::Similarity><SimilarityPage /></div>
            <div hidden=move || page.get() != Page::Models><ModelsPage /></div>
        </main>
    }
    .into_any()
}
