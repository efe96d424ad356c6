//! A training run's checkpoint: where the loop stands (epoch, batch, step), the evaluations so
//! far, and the optimiser's flat buffers (the trainable weights, AdamW's moments and its step).
//! With the run's own settings, data and base model, a run resumed from it ends with the weights
//! of one that never stopped: the batches come from the same seeded shuffles, and the dropout
//! masks from the device's generator seeded afresh at every step from the run's seed and the
//! step.
//!
//! Bytes: `TLCKPT01`, the little-endian length of a JSON header, the header, then the three
//! buffers as little-endian f32 one after the other.

use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;

const MAGIC: &[u8; 8] = b"TLCKPT01";

/// AdamW's state: every trainable weight in one flat buffer (in the model's parameter order),
/// the two moments, and the number of steps taken.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OptimState {
    pub step: i32,
    pub params: Vec<f32>,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
}

/// Where a run stands, and what it has learned.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The epoch under way (1-based)...
    pub epoch: usize,
    /// ...and how many of its batches are done.
    pub batch: usize,
    /// Optimisation steps done in all.
    pub steps: usize,
    /// (epoch, test loss, test metrics) of each finished epoch.
    pub history: Vec<(usize, f64, Metrics)>,
    /// Time spent in training steps so far (ms).
    pub train_ms: f64,
    pub optimizer: OptimState,
}

#[derive(Serialize, Deserialize)]
struct Header {
    epoch: usize,
    batch: usize,
    steps: usize,
    history: Vec<(usize, f64, Metrics)>,
    train_ms: f64,
    optimizer_step: i32,
    len: usize,
}

impl Checkpoint {
    pub fn to_bytes(&self) -> Vec<u8> {
        let o = &self.optimizer;
        let header = serde_json::to_vec(&Header {
            epoch: self.epoch,
            batch: self.batch,
            steps: self.steps,
            history: self.history.clone(),
            train_ms: self.train_ms,
            optimizer_step: o.step,
            len: o.params.len(),
        })
        .unwrap_or_default();
        let mut out = Vec::with_capacity(16 + header.len() + 12 * o.params.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        for buffer in [&o.params, &o.m, &o.v] {
            for x in buffer.iter() {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let bad = |why: &str| format!("the stored checkpoint is damaged ({why})");
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return Err(bad("not a Tunelab checkpoint"));
        }
        let n = u64::from_le_bytes(bytes[8..16].try_into().unwrap_or_default()) as usize;
        let body = bytes.get(16..).ok_or_else(|| bad("truncated"))?;
        let header: Header = body
            .get(..n)
            .ok_or_else(|| bad("truncated header"))
            .and_then(|h| serde_json::from_slice(h).map_err(|e| bad(&e.to_string())))?;
        let data = &body[n..];
        if data.len() != 12 * header.len {
            return Err(bad("the weights are truncated"));
        }
        let floats = |i: usize| -> Vec<f32> {
            data[4 * header.len * i..4 * header.len * (i + 1)]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        Ok(Self {
            epoch: header.epoch,
            batch: header.batch,
            steps: header.steps,
            history: header.history,
            train_ms: header.train_ms,
            optimizer: OptimState {
                step: header.optimizer_step,
                params: floats(0),
                m: floats(1),
                v: floats(2),
            },
        })
    }
}

/// The seed of the device's generator for optimisation step `step` (0-based) of a run seeded
/// `seed`: a SplitMix64 draw, so that neighbouring steps get unrelated streams.
pub fn step_seed(seed: u64, step: usize) -> u64 {
    let mut rng = crate::rng::Rng::new(seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_survives_its_bytes_and_damage_is_refused() {
        let c = Checkpoint {
            epoch: 2,
            batch: 3,
            steps: 9,
            history: Vec::new(),
            train_ms: 12.5,
            optimizer: OptimState {
                step: 9,
                params: vec![1.0, -2.5, f32::MIN_POSITIVE],
                m: vec![0.1, 0.2, 0.3],
                v: vec![1e-8, 2e-8, 3e-8],
            },
        };
        let bytes = c.to_bytes();
        assert_eq!(Checkpoint::from_bytes(&bytes).unwrap(), c);
        assert!(Checkpoint::from_bytes(&bytes[..bytes.len() - 1])
            .unwrap_err()
            .contains("truncated"));
        assert!(Checkpoint::from_bytes(b"PK\x03\x04 not a checkpoint")
            .unwrap_err()
            .contains("not a Tunelab checkpoint"));
        // Evaluation losses come back to the last bit (1.2649612148864073 came back as ...071
        // before serde_json's `float_roundtrip`: a resumed run's history differed from an
        // uninterrupted one's).
        let names = vec!["NEGATIVE".to_string(), "POSITIVE".to_string()];
        let metrics = crate::metrics::evaluate(
            &[0, 1, 1, 0],
            &[1, 1, 1, 0],
            &names,
            crate::metrics::Average::default_for(&names),
        );
        let mut rng = crate::rng::Rng::new(5);
        let mut losses = vec![1.2649612148864073, 0.1 + 0.2, f64::MIN_POSITIVE];
        losses.extend((0..200).map(|_| rng.next_f64() * 10.0));
        let c = Checkpoint {
            history: losses
                .iter()
                .enumerate()
                .map(|(i, &l)| (i, l, metrics.clone()))
                .collect(),
            ..c
        };
        let back = Checkpoint::from_bytes(&c.to_bytes()).unwrap();
        for ((_, a, _), (_, b, _)) in back.history.iter().zip(&c.history) {
            assert_eq!(a.to_bits(), b.to_bits(), "{b:e} came back as {a:e}");
        }
        assert_ne!(step_seed(42, 0), step_seed(42, 1));
        assert_eq!(step_seed(42, 7), step_seed(42, 7));
    }
}
