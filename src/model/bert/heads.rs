//! The heads on the encoder: BERT's pooler, the sequence-classification head and the masked-LM
//! head. Their Hugging Face names and initialisation are in `loader.rs`.

use burn::module::Param;
use burn::nn::{Dropout, Linear};
use burn::prelude::*;
use burn::tensor::activation;

use super::{first_token, mean_pool, Encoder, EncoderInput, Pooling};
use crate::model::kernels::{dropout, linear_activate};
use crate::model::layers::LayerNorm;
use crate::model::lora::{adapted, LinearLora};

/// BERT's pooler: `tanh(dense(h[:, 0]))`.
#[derive(Module, Debug)]
pub struct Pooler {
    pub dense: Linear,
    /// LoRA adapters on `dense`, while they train unmerged.
    pub lora: Option<LinearLora>,
    /// Initialised here, the checkpoint having none: LoRA then trains it with the head.
    #[module(skip)]
    pub fresh: bool,
}

impl Pooler {
    pub fn forward(&self, hidden: Tensor<3>) -> Tensor<2> {
        adapted(&self.dense, self.lora.as_ref(), first_token(hidden)).tanh()
    }
}

/// How a classification head with a hidden layer arranges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadStyle {
    /// DistilBERT: `classifier(dropout(relu(pre_classifier(x))))` (BERT, with no hidden layer:
    /// `classifier(dropout(x))`).
    DistilBert,
    /// RoBERTa's `RobertaClassificationHead`:
    /// `out_proj(dropout(tanh(dense(dropout(x)))))`.
    Roberta,
    /// ModernBERT's `ModernBertPredictionHead` then the classifier:
    /// `classifier(dropout(norm(act(dense(x)))))`, `act` from `classifier_activation`.
    ModernBert,
}

/// The trainable head of a sequence classifier: a hidden layer when the family has one
/// (DistilBERT's `pre_classifier`, RoBERTa's `classifier.dense`), dropout, then the
/// `classifier` linear layer, arranged as `style` says.
#[derive(Module, Debug)]
pub struct ClassifierHead {
    pub pre_classifier: Option<Linear>,
    /// ModernBERT's `head.norm`, after the hidden layer's activation.
    pub norm: Option<LayerNorm>,
    pub dropout: Dropout,
    pub classifier: Linear,
    #[module(skip)]
    pub style: HeadStyle,
    /// The hidden layer's activation in ModernBERT's head.
    #[module(skip)]
    pub activation: crate::model::config::Activation,
}

impl ClassifierHead {
    /// Logits `[b, labels]` from pooled features `[b, d]`.
    pub fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        let x = match (&self.pre_classifier, self.style) {
            (Some(pre), HeadStyle::DistilBert) => activation::relu(pre.forward(features)),
            (Some(pre), HeadStyle::Roberta) => pre.forward(dropout(&self.dropout, features)).tanh(),
            (Some(pre), HeadStyle::ModernBert) => {
                let x = linear_activate(pre, features, self.activation);
                match &self.norm {
                    Some(norm) => norm.forward(x),
                    None => x,
                }
            }
            (None, _) => features,
        };
        self.classifier.forward(dropout(&self.dropout, x))
    }

    pub fn num_labels(&self) -> usize {
        self.classifier.weight.dims()[1]
    }
}

/// A sequence classifier: `BertForSequenceClassification` (pooler -> dropout -> classifier),
/// `DistilBertForSequenceClassification` (h[:,0] -> pre_classifier -> ReLU -> dropout ->
/// classifier), `RobertaForSequenceClassification` (h[:,0] -> dropout -> dense -> tanh ->
/// dropout -> out_proj), or, with mean pooling, a linear head on sentence-transformers features.
#[derive(Module, Debug)]
pub struct SequenceClassifier {
    pub encoder: Encoder,
    /// BERT's pooler (part of the base model, `bert.pooler`).
    pub pooler: Option<Pooler>,
    pub head: ClassifierHead,
    #[module(skip)]
    pub pooling: Pooling,
}

impl SequenceClassifier {
    /// The pooled features the head reads (BERT: `pooler_output`; DistilBERT: `h[:, 0]`;
    /// mean pooling: the masked mean). Head-only training caches these.
    pub fn features(&self, input: &EncoderInput) -> Tensor<2> {
        let hidden = self.encoder.forward(input);
        match (self.pooling, &self.pooler) {
            (Pooling::Mean, _) => mean_pool(hidden, &input.attention_mask),
            (Pooling::Cls, Some(p)) => p.forward(hidden),
            (Pooling::Cls, None) => first_token(hidden),
        }
    }

    pub fn forward(&self, input: &EncoderInput) -> Tensor<2> {
        self.head.forward(self.features(input))
    }

    pub fn num_labels(&self) -> usize {
        self.head.num_labels()
    }
}

/// `*ForTokenClassification`: a linear layer (`classifier`) on every token's hidden state (the
/// dropout before it is off at inference).
#[derive(Module, Debug)]
pub struct TokenClassifier {
    pub encoder: Encoder,
    pub classifier: Linear,
}

impl TokenClassifier {
    /// Logits `[b, t, labels]`.
    pub fn forward(&self, input: &EncoderInput) -> Tensor<3> {
        self.classifier.forward(self.encoder.forward(input))
    }

    pub fn num_labels(&self) -> usize {
        self.classifier.weight.dims()[1]
    }
}

/// `BertForMaskedLM` / `DistilBertForMaskedLM`: transform, activation, LayerNorm, then the
/// decoder tied to the word embeddings plus a bias.
#[derive(Module, Debug)]
pub struct MaskedLm {
    pub encoder: Encoder,
    pub transform: Linear,
    pub norm: LayerNorm,
    pub bias: Param<Tensor<1>>,
    /// The transform's activation (the encoder's, or ModernBERT's `classifier_activation`).
    #[module(skip)]
    pub activation: crate::model::config::Activation,
}

impl MaskedLm {
    /// Vocabulary logits `[n, vocab]` at the given hidden states `[n, d]`.
    pub fn logits_at(&self, hidden: Tensor<2>) -> Tensor<2> {
        let h = linear_activate(&self.transform, hidden, self.activation);
        let h = self.norm.forward(h);
        let vocab = self.encoder.word_embeddings.weight.val();
        h.matmul(vocab.transpose()) + self.bias.val().unsqueeze::<2>()
    }

    /// Logits at the `(row, position)` pairs of the batch: `[n, vocab]`.
    pub fn logits_at_positions(
        &self,
        input: &EncoderInput,
        positions: &[(usize, usize)],
    ) -> Tensor<2> {
        let hidden = self.encoder.forward(input);
        let [b, t, d] = hidden.dims();
        let flat = hidden.reshape([b * t, d]);
        let index: Vec<i32> = positions.iter().map(|&(r, p)| (r * t + p) as i32).collect();
        let n = index.len();
        let index = Tensor::<1, Int>::from_data(TensorData::new(index, [n]), &flat.device());
        self.logits_at(flat.select(0, index))
    }
}
