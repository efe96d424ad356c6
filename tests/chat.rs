//! Chat templates rendered as transformers' `apply_chat_template(tokenize=False)` renders them
//! (golden/chat.json, made by tests/fixtures/gen_chat_fixtures.py): SmolLM2's, Qwen2.5's and
//! Qwen3's templates (thinking blocks, `enable_thinking`, reversed loops, namespaces, Python
//! string methods) on conversations with a system message, earlier turns and non-ASCII text.

mod common;

use common::*;
use tunelab::prompt::chat::{ChatMessage, ChatTemplate};

#[test]
fn chat_templates_render_as_transformers_apply_chat_template() {
    let golden: serde_json::Value =
        serde_json::from_slice(&read(root().join("tests/fixtures/golden/chat.json"))).unwrap();
    let conversations: Vec<Vec<ChatMessage>> =
        serde_json::from_value(golden["conversations"].clone()).unwrap();
    let mut checked = 0;
    for (name, cases) in golden["models"].as_object().unwrap() {
        let config: serde_json::Value =
            serde_json::from_slice(&read(fixture_model(name).join("tokenizer_config.json")))
                .unwrap();
        let template = ChatTemplate::from_tokenizer_config(&config)
            .unwrap_or_else(|| panic!("{name}: no chat template"));
        assert_eq!(
            template.tokens.get("eos_token").map(String::as_str),
            Some("</s>")
        );
        for case in cases.as_array().unwrap() {
            let conversation = &conversations[case["conversation"].as_u64().unwrap() as usize];
            let gen = case["add_generation_prompt"].as_bool().unwrap();
            let kwargs = case["kwargs"].as_object().unwrap();
            let got = template.render(conversation, gen, kwargs).unwrap();
            assert_eq!(
                got,
                case["text"].as_str().unwrap(),
                "{name}: conversation {} generation prompt {gen} {kwargs:?}",
                case["conversation"]
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * 3 + 2 * 3 + 4 * 3);
}

#[test]
fn a_template_that_raises_or_does_not_parse_says_so() {
    let config = serde_json::json!({
        "chat_template": "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversations must start with a user turn') }}{% endif %}ok"
    });
    let template = ChatTemplate::from_tokenizer_config(&config).unwrap();
    let err = template
        .render(
            &[ChatMessage::new("assistant", "hi")],
            true,
            &Default::default(),
        )
        .unwrap_err();
    assert!(
        err.contains("Conversations must start with a user turn"),
        "{err}"
    );
    assert_eq!(
        template
            .render(&[ChatMessage::new("user", "hi")], true, &Default::default())
            .unwrap(),
        "ok"
    );
    let broken =
        ChatTemplate::from_tokenizer_config(&serde_json::json!({"chat_template": "{% for %}"}))
            .unwrap();
    assert!(broken
        .render(&[], false, &Default::default())
        .unwrap_err()
        .contains("does not parse"));
}

#[test]
fn a_chat_prompt_goes_through_the_models_template_before_generation() {
    use burn::prelude::Device;
    use tunelab::hub::ModelFiles;
    use tunelab::prompt::chat::ChatSpec;
    use tunelab::prompt::generate::generate;
    use tunelab::prompt::{GenerationConfig, LanguageModel};
    let golden: serde_json::Value =
        serde_json::from_slice(&read(root().join("tests/fixtures/golden/chat.json"))).unwrap();
    let user = golden["conversations"][0][0]["content"].as_str().unwrap();
    let want = golden["models"]["tiny-qwen3"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["conversation"] == 0
                && c["add_generation_prompt"] == true
                && c["kwargs"].as_object().unwrap().is_empty()
        })
        .unwrap()["text"]
        .as_str()
        .unwrap();
    let files = ModelFiles::from_dir(fixture_model("tiny-qwen3")).unwrap();
    let lm = LanguageModel::load(&files, &Device::flex(), u64::MAX).unwrap();
    let spec = ChatSpec::default();
    assert_eq!(lm.chat_prompt(user, &spec).unwrap(), want);
    let cfg = GenerationConfig {
        max_new_tokens: 3,
        chat: Some(spec),
        ..Default::default()
    };
    let out = block_on(generate(&lm, user, &cfg, &mut |_| true)).unwrap();
    assert_eq!(out.sent_prompt.as_deref(), Some(want));
    assert_eq!(out.ids.len(), 3);
    // GPT-2 has no chat template: asking for one says so.
    let files = ModelFiles::from_dir(fixture_model("tiny-gpt2")).unwrap();
    let gpt2 = LanguageModel::load(&files, &Device::flex(), u64::MAX).unwrap();
    let err = block_on(generate(&gpt2, user, &cfg, &mut |_| true))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no chat template"), "{err}");
}
