//! Where BERT, DistilBERT and RoBERTa (XLM-RoBERTa too) keep their tensors in a Hugging Face checkpoint, and their dropout
//! settings in `config.json`: one layout per family, side by side, so that every difference
//! between the two stands in one place. `loader.rs` reads names from here for loading and export.

use super::heads::HeadStyle;
use crate::model::config::Family;

/// Where a family keeps its tensors and its dropout rates. Tensor names are relative to the
/// checkpoint's `prefix` (which a bare-model checkpoint may omit) unless said otherwise; the
/// embeddings (`embeddings.word_embeddings`, `embeddings.position_embeddings`,
/// `embeddings.LayerNorm`) are named alike in both.
pub(super) struct Layout {
    /// The base model's prefix (with its dot).
    pub prefix: &'static str,
    /// The token type embeddings under `embeddings.`, if the family has them.
    pub token_types: Option<&'static str>,
    /// The transformer layers: `{layers}.{i}.{query}`, ...
    pub layers: &'static str,
    pub query: &'static str,
    pub key: &'static str,
    pub value: &'static str,
    pub attn_out: &'static str,
    pub attn_norm: &'static str,
    pub ffn_in: &'static str,
    pub ffn_out: &'static str,
    pub ffn_norm: &'static str,
    /// The pooler (`tanh(dense(h[:, 0]))`), part of the base model, if the family has one.
    pub pooler: Option<&'static str>,
    /// The classification head, outside the prefix: a hidden layer (`pre_classifier`) if the
    /// family has one, then `classifier`, arranged as `head_style` says.
    pub pre_classifier: Option<&'static str>,
    pub classifier: &'static str,
    pub head_style: HeadStyle,
    /// The masked-LM head, outside the prefix: transform (dense, activation, LayerNorm), then
    /// the decoder tied to the word embeddings plus this bias (a full tensor name).
    pub mlm_transform: &'static str,
    pub mlm_norm: &'static str,
    pub mlm_bias: &'static str,
    /// config.json keys of the dropout rates with transformers' defaults; a classifier rate
    /// without a default falls back to the hidden one (BERT's `classifier_dropout: null`).
    pub hidden_dropout: (&'static str, f64),
    pub attention_dropout: (&'static str, f64),
    pub classifier_dropout: (&'static str, Option<f64>),
}

const BERT: Layout = Layout {
    prefix: "bert.",
    token_types: Some("token_type_embeddings"),
    layers: "encoder.layer",
    query: "attention.self.query",
    key: "attention.self.key",
    value: "attention.self.value",
    attn_out: "attention.output.dense",
    attn_norm: "attention.output.LayerNorm",
    ffn_in: "intermediate.dense",
    ffn_out: "output.dense",
    ffn_norm: "output.LayerNorm",
    pooler: Some("pooler.dense"),
    pre_classifier: None,
    classifier: "classifier",
    head_style: HeadStyle::DistilBert,
    mlm_transform: "cls.predictions.transform.dense",
    mlm_norm: "cls.predictions.transform.LayerNorm",
    mlm_bias: "cls.predictions.bias",
    hidden_dropout: ("hidden_dropout_prob", 0.1),
    attention_dropout: ("attention_probs_dropout_prob", 0.1),
    classifier_dropout: ("classifier_dropout", None),
};

const DISTILBERT: Layout = Layout {
    prefix: "distilbert.",
    token_types: None,
    layers: "transformer.layer",
    query: "attention.q_lin",
    key: "attention.k_lin",
    value: "attention.v_lin",
    attn_out: "attention.out_lin",
    attn_norm: "sa_layer_norm",
    ffn_in: "ffn.lin1",
    ffn_out: "ffn.lin2",
    ffn_norm: "output_layer_norm",
    pooler: None,
    pre_classifier: Some("pre_classifier"),
    classifier: "classifier",
    head_style: HeadStyle::DistilBert,
    mlm_transform: "vocab_transform",
    mlm_norm: "vocab_layer_norm",
    mlm_bias: "vocab_projector.bias",
    hidden_dropout: ("dropout", 0.1),
    attention_dropout: ("attention_dropout", 0.1),
    classifier_dropout: ("seq_classif_dropout", Some(0.2)),
};

/// RoBERTa and XLM-RoBERTa: BERT's layers under `roberta.`; no pooler in the classifier
/// (transformers builds it with `add_pooling_layer=False`); the head is `classifier.dense` and
/// `classifier.out_proj`; the masked-LM head is `lm_head`.
const ROBERTA: Layout = Layout {
    prefix: "roberta.",
    pooler: None,
    pre_classifier: Some("classifier.dense"),
    classifier: "classifier.out_proj",
    head_style: HeadStyle::Roberta,
    mlm_transform: "lm_head.dense",
    mlm_norm: "lm_head.layer_norm",
    mlm_bias: "lm_head.bias",
    ..BERT
};

/// ModernBERT: everything under `model.`; its layers' names are in `loader.rs` (`load_modern`),
/// as they share none with BERT's (one fused `attn.Wqkv`, pre-norm, a gated `mlp.Wi`). The
/// classification head is `head.dense`, `head.norm` then `classifier`; the masked-LM head is
/// the same `head.*` then the decoder tied to the token embeddings plus `decoder.bias`.
const MODERNBERT: Layout = Layout {
    prefix: "model.",
    token_types: None,
    layers: "layers",
    query: "attn.Wqkv",
    key: "attn.Wqkv",
    value: "attn.Wqkv",
    attn_out: "attn.Wo",
    attn_norm: "attn_norm",
    ffn_in: "mlp.Wi",
    ffn_out: "mlp.Wo",
    ffn_norm: "mlp_norm",
    pooler: None,
    pre_classifier: Some("head.dense"),
    classifier: "classifier",
    head_style: HeadStyle::ModernBert,
    mlm_transform: "head.dense",
    mlm_norm: "head.norm",
    mlm_bias: "decoder.bias",
    hidden_dropout: ("attention_dropout", 0.0),
    attention_dropout: ("attention_dropout", 0.0),
    classifier_dropout: ("classifier_dropout", Some(0.0)),
};

pub(super) fn layout(family: Family) -> &'static Layout {
    match family {
        Family::DistilBert => &DISTILBERT,
        Family::Roberta | Family::XlmRoberta => &ROBERTA,
        Family::ModernBert => &MODERNBERT,
        Family::Bert | Family::Gpt2 | Family::Llama | Family::Qwen2 | Family::Qwen3 => &BERT,
    }
}

impl Layout {
    /// Query, key and value, fused into one linear layer in this order.
    pub fn qkv(&self) -> [&'static str; 3] {
        [self.query, self.key, self.value]
    }
}
