//! The app shell: header, navigation, backend status line, and the page router (by URL hash).

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::backend::{probe, BackendStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Classify,
    FineTune,
    Prompt,
    Models,
}

impl Page {
    pub const ALL: [Page; 4] = [Page::Classify, Page::FineTune, Page::Prompt, Page::Models];

    pub fn title(self) -> &'static str {
        match self {
            Page::Classify => "Classify",
            Page::FineTune => "Fine-tune",
            Page::Prompt => "Prompt",
            Page::Models => "Models",
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            Page::Classify => "classify",
            Page::FineTune => "fine-tune",
            Page::Prompt => "prompt",
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
pub fn App() -> impl IntoView {
    let page = RwSignal::new(Page::from_hash(&current_hash()));
    let backend: RwSignal<Option<BackendStatus>> = RwSignal::new(None);

    // Follow the URL hash (back/forward buttons, links).
    let on_hash = wasm_bindgen::closure::Closure::<dyn Fn()>::new(move || {
        page.set(Page::from_hash(&current_hash()));
    });
    if let Some(w) = web_sys::window() {
        w.set_onhashchange(Some(wasm_bindgen::JsCast::unchecked_ref(on_hash.as_ref())));
    }
    on_hash.forget();

    spawn_local(async move {
        backend.set(Some(probe().await));
    });

    view! {
        <header class="topbar">
            <a class="brand" href="#/classify">"Tunelab"</a>
            <nav aria-label="Main">
                {Page::ALL
                    .into_iter()
                    .map(|p| {
                        view! {
                            <a
                                href=format!("#/{}", p.slug())
                                class:active=move || page.get() == p
                                aria-current=move || (page.get() == p).then_some("page")
                            >
                                {p.title()}
                            </a>
                        }
                    })
                    .collect_view()}
            </nav>
        </header>
        <p
            id="backend-status"
            class="status"
            data-backend=move || match backend.get() {
                Some(BackendStatus::WebGpu { .. }) => "webgpu",
                Some(BackendStatus::Cpu { .. }) => "cpu",
                None => "probing",
            }
        >
            {move || match backend.get() {
                Some(status) => status.line(),
                None => "Backend: probing WebGPU…".to_string(),
            }}
        </p>
        <main id="page" data-page=move || page.get().slug()>
            <h1>{move || page.get().title()}</h1>
        </main>
    }
}
