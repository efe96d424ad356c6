//! The training card: the mode (with its defaults), the training arguments, the test split, and
//! start / cancel. Training errors show here.

use leptos::prelude::*;

use crate::protocol::Mode;
use crate::ui::components::{setting_field, ErrorBox};

use super::state::FineTuneState;

#[component]
pub fn TrainingSettings(state: FineTuneState) -> impl IntoView {
    let args = state.args;
    view! {
        <div class="card" id="train-settings">
            <ModeChoice state=state />
            <LoraFields state=state />
            <div class="row">
                {setting_field(args, "Epochs", "arg-epochs", |a| a.num_train_epochs.to_string(), |a, v| if let Ok(x) = v.parse() { a.num_train_epochs = x })}
                {setting_field(args, "Batch size", "arg-batch", |a| a.per_device_train_batch_size.to_string(), |a, v| if let Ok(x) = v.parse() { a.per_device_train_batch_size = x })}
                {setting_field(args, "Learning rate", "arg-lr", |a| format!("{}", a.learning_rate), |a, v| if let Ok(x) = v.parse() { a.learning_rate = x })}
                {setting_field(args, "Max length (tokens)", "arg-maxlen", |a| a.max_length.to_string(), |a, v| if let Ok(x) = v.parse() { a.max_length = x })}
            </div>
            <div class="row">
                {setting_field(args, "Weight decay", "arg-wd", |a| format!("{}", a.weight_decay), |a, v| if let Ok(x) = v.parse() { a.weight_decay = x })}
                {setting_field(args, "Warm-up ratio", "arg-warmup", |a| format!("{}", a.warmup_ratio), |a, v| if let Ok(x) = v.parse() { a.warmup_ratio = x })}
                {setting_field(args, "Log every (steps)", "arg-logging", |a| a.logging_steps.to_string(), |a, v| if let Ok(x) = v.parse() { a.logging_steps = x })}
                {setting_field(args, "Seed", "arg-seed", |a| a.seed.to_string(), |a, v| if let Ok(x) = v.parse() { a.seed = x })}
                {setting_field(args, "Checkpoint every (steps)", "arg-save-steps", |a| a.save_steps.to_string(), |a, v| if let Ok(x) = v.parse() { a.save_steps = x })}
                <TestSplit state=state />
            </div>
            <p class="muted">{move || if state.separate_test.get() {
                "Evaluation after each epoch on the test file; training uses every row of the data file."
            } else {
                "Evaluation after each epoch on the held-out split (stratified, seeded)."
            }}</p>
            <div class="row">
                <button id="train-start" on:click=move |_| state.start() disabled=move || !state.can_start()>"Start training"</button>
                <button id="train-cancel" class="secondary" on:click=move |_| state.cancel() disabled=move || !state.running()>"Cancel"</button>
                <button id="export-script" class="secondary" on:click=move |_| state.export_script() disabled=move || !state.can_start()
                    title="The same run with transformers' Trainer on a GPU machine (one or several GPUs): for data or models too big for a browser tab">"Export as a training script (.zip)"</button>
            </div>
            <ErrorBox error=state.train.error() />
        </div>
    }
}

/// LoRA's rank, alpha, dropout and target layers, shown in LoRA mode.
#[component]
fn LoraFields(state: FineTuneState) -> impl IntoView {
    let args = state.args;
    let lora = move || args.with(|a| a.mode == Mode::Lora);
    view! {
        <Show when=lora>
            <div class="row" id="lora-settings">
                {setting_field(args, "LoRA rank r", "arg-lora-r", |a| a.lora.r.to_string(), |a, v| if let Ok(x) = v.parse() { a.lora.r = x })}
                {setting_field(args, "LoRA alpha", "arg-lora-alpha", |a| format!("{}", a.lora.alpha), |a, v| if let Ok(x) = v.parse() { a.lora.alpha = x })}
                {setting_field(args, "LoRA dropout", "arg-lora-dropout", |a| format!("{}", a.lora.dropout), |a, v| if let Ok(x) = v.parse() { a.lora.dropout = x })}
                <div>
                    <label for="arg-lora-targets">"Target layers (names, comma-separated)"</label>
                    <input id="arg-lora-targets" type="text" spellcheck="false"
                        placeholder="the attention's query and value"
                        prop:value=move || args.with(|a| a.lora.target_modules.join(", "))
                        on:change=move |ev| {
                            let v = event_target_value(&ev);
                            args.update(|a| a.lora.target_modules = v.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect())
                        } />
                </div>
            </div>
            <p class="muted">"As PEFT's LoraConfig: a layer is adapted when its name in the transformers model ends with one of these (query, value, dense, q_lin, Wqkv, ...). The classification head trains in full."</p>
        </Show>
    }
}

/// Head only, full or LoRA fine-tuning; choosing one sets its epochs, batch size and learning
/// rate.
#[component]
fn ModeChoice(state: FineTuneState) -> impl IntoView {
    let mode = move || state.args.with(|a| a.mode);
    view! {
        <div class="row">
            <label class="inline"><input type="radio" name="mode" id="mode-head" prop:checked=move || mode() == Mode::Head
                on:change=move |_| state.set_mode(Mode::Head) />
                " Head only (encoder frozen: fast)"</label>
            <label class="inline"><input type="radio" name="mode" id="mode-full" prop:checked=move || mode() == Mode::Full
                on:change=move |_| state.set_mode(Mode::Full) />
                " Full (all weights: slow, usually better)"</label>
            <label class="inline"><input type="radio" name="mode" id="mode-lora" prop:checked=move || mode() == Mode::Lora
                on:change=move |_| state.set_mode(Mode::Lora) />
                " LoRA (small adapters: a few MB to save, near full quality)"</label>
        </div>
    }
}

/// The share of the data held out for testing (off with a separate test file).
#[component]
fn TestSplit(state: FineTuneState) -> impl IntoView {
    let fraction = state.test_fraction;
    view! {
        <div>
            <label for="arg-test">"Test split"</label>
            <input id="arg-test" type="text" inputmode="decimal" prop:value=move || fraction.get().to_string()
                disabled=move || state.separate_test.get()
                on:change=move |ev| if let Ok(x) = event_target_value(&ev).trim().parse() { fraction.set(x) } />
        </div>
    }
}
