//! Sentence similarity and semantic search on sentence embeddings, as sentence-transformers'
//! `model.similarity` and `util.semantic_search`: the similarity function the model names
//! (`similarity_fn_name` in `config_sentence_transformers.json`, cosine when it names none),
//! the matrix of every pair, and the nearest sentences to a query, best first.

use serde::{Deserialize, Serialize};

/// How two embeddings compare; higher is more similar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Similarity {
    /// `util.cos_sim`: each side L2-normalised (eps 1e-12), then the dot product.
    Cosine,
    /// `util.dot_score`.
    Dot,
    /// `util.euclidean_sim`: minus the Euclidean distance.
    Euclidean,
    /// `util.manhattan_sim`: minus the L1 distance.
    Manhattan,
}

impl Similarity {
    /// sentence-transformers' `SimilarityFunction` names (and their aliases).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "cosine" => Some(Self::Cosine),
            "dot" | "dot_product" => Some(Self::Dot),
            "euclidean" => Some(Self::Euclidean),
            "manhattan" => Some(Self::Manhattan),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Cosine => "cosine",
            Self::Dot => "dot",
            Self::Euclidean => "euclidean",
            Self::Manhattan => "manhattan",
        }
    }

    /// The similarity of `a` and `b` (accumulated in f64).
    pub fn score(self, a: &[f32], b: &[f32]) -> f32 {
        let pairs = a.iter().zip(b).map(|(&x, &y)| (x as f64, y as f64));
        let value = match self {
            Self::Cosine => {
                let (mut dot, mut aa, mut bb) = (0.0, 0.0, 0.0);
                for (x, y) in pairs {
                    dot += x * y;
                    aa += x * x;
                    bb += y * y;
                }
                dot / (aa.sqrt().max(1e-12) * bb.sqrt().max(1e-12))
            }
            Self::Dot => pairs.map(|(x, y)| x * y).sum(),
            Self::Euclidean => -pairs.map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt(),
            Self::Manhattan => -pairs.map(|(x, y)| (x - y).abs()).sum::<f64>(),
        };
        value as f32
    }

    /// `similarity(a, b)`: the score of every row of `a` against every row of `b`.
    pub fn matrix(self, a: &[Vec<f32>], b: &[Vec<f32>]) -> Vec<Vec<f32>> {
        a.iter()
            .map(|x| b.iter().map(|y| self.score(x, y)).collect())
            .collect()
    }

    /// `util.semantic_search` for one query: the `top_k` rows of `corpus` most similar to
    /// `query`, best first (the earlier row first on a tie).
    pub fn search(self, query: &[f32], corpus: &[Vec<f32>], top_k: usize) -> Vec<Hit> {
        let mut hits: Vec<Hit> = corpus
            .iter()
            .enumerate()
            .map(|(corpus_id, row)| Hit {
                corpus_id,
                score: self.score(query, row),
            })
            .collect();
        hits.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.corpus_id.cmp(&b.corpus_id))
        });
        hits.truncate(top_k);
        hits
    }
}

/// One result of a semantic search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The row of the corpus.
    pub corpus_id: usize,
    pub score: f32,
}

/// The most sentences whose full matrix is sent to the page (a heat map of more would not be
/// readable); past it only the nearest neighbours are.
pub const MAX_MATRIX: usize = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_function_scores_as_sentence_transformers() {
        let (a, b) = (vec![3.0, 4.0], vec![4.0, 3.0]);
        assert!((Similarity::Cosine.score(&a, &b) - 24.0 / 25.0).abs() < 1e-7);
        assert_eq!(Similarity::Dot.score(&a, &b), 24.0);
        assert!((Similarity::Euclidean.score(&a, &b) + 2f32.sqrt()).abs() < 1e-6);
        assert_eq!(Similarity::Manhattan.score(&a, &b), -2.0);
        // A zero vector has similarity 0, not NaN.
        assert_eq!(Similarity::Cosine.score(&[0.0, 0.0], &b), 0.0);
        for name in ["cosine", "dot", "euclidean", "manhattan"] {
            assert_eq!(Similarity::parse(name).unwrap().name(), name);
        }
        assert!(Similarity::parse("jaccard").is_none());
    }

    #[test]
    fn search_ranks_best_first_and_keeps_row_order_on_ties() {
        let corpus = vec![
            vec![1.0, 0.0],
            vec![0.0, 1.0],
            vec![1.0, 0.0],
            vec![1.0, 1.0],
        ];
        let hits = Similarity::Cosine.search(&[1.0, 0.0], &corpus, 3);
        let ids: Vec<usize> = hits.iter().map(|h| h.corpus_id).collect();
        assert_eq!(ids, vec![0, 2, 3]);
        assert_eq!(Similarity::Dot.search(&[1.0, 0.0], &corpus, 10).len(), 4);
    }
}
