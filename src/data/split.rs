//! Seeded, stratified train/test split: every class keeps its share in both parts, as
//! scikit-learn's `train_test_split(..., test_size=0.2, stratify=y)` does.

use crate::rng::Rng;

use super::{DataError, Dataset};

/// Indices of a split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

/// Splits `labels` (class indices) so that `ceil(test_fraction * n)` rows go to the test part,
/// allotted to classes in proportion to their size (largest remainders first), with at least one
/// test and one training row per class. Both parts are shuffled with `seed`.
pub fn stratified_split(
    labels: &[usize],
    num_classes: usize,
    test_fraction: f64,
    seed: u64,
) -> Result<Split, DataError> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(DataError::Invalid(format!(
            "the test fraction must be between 0 and 1, got {test_fraction}"
        )));
    }
    let n = labels.len();
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l].push(i);
    }
    if let Some(c) = by_class.iter().position(|v| v.len() < 2) {
        return Err(DataError::Invalid(format!(
            "class {c} has {} example(s): a stratified split needs at least 2 per class",
            by_class[c].len()
        )));
    }
    let present = by_class.iter().filter(|v| !v.is_empty()).count();
    let n_test = ((test_fraction * n as f64).ceil() as usize).clamp(present, n - present);
    // Proportional allotment with largest remainders.
    let exact: Vec<f64> = by_class
        .iter()
        .map(|v| v.len() as f64 * n_test as f64 / n as f64)
        .collect();
    let mut take: Vec<usize> = exact
        .iter()
        .zip(&by_class)
        .map(|(&e, v)| (e.floor() as usize).clamp(1, v.len() - 1))
        .collect();
    let mut order: Vec<usize> = (0..num_classes).collect();
    order.sort_by(|&a, &b| {
        let ra = exact[a] - exact[a].floor();
        let rb = exact[b] - exact[b].floor();
        rb.partial_cmp(&ra)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(&b))
    });
    let mut total: usize = take.iter().sum();
    for &c in order.iter().cycle().take(num_classes * 4) {
        if total >= n_test {
            break;
        }
        if take[c] + 1 < by_class[c].len() {
            take[c] += 1;
            total += 1;
        }
    }
    let mut rng = Rng::new(seed);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (c, mut idx) in by_class.into_iter().enumerate() {
        rng.shuffle(&mut idx);
        test.extend_from_slice(&idx[..take[c]]);
        train.extend_from_slice(&idx[take[c]..]);
    }
    rng.shuffle(&mut train);
    rng.shuffle(&mut test);
    Ok(Split { train, test })
}

/// Up to `n` examples chosen with `seed`, stratified by class (for a quick run on a subset).
pub fn stratified_sample(dataset: &Dataset, n: usize, seed: u64) -> Dataset {
    if n >= dataset.len() {
        return dataset.clone();
    }
    let fraction = n as f64 / dataset.len() as f64;
    match stratified_split(&dataset.labels, dataset.num_classes(), fraction, seed) {
        Ok(split) => dataset.subset(&split.test),
        Err(_) => dataset.subset(&(0..n).collect::<Vec<_>>()),
    }
}
