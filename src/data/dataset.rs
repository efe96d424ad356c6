//! Labelled datasets from a parsed [`Table`]: the chosen text and label columns, labels as strings
//! or integers (ordered as `sorted(set(y))`), and a test set that shares the training classes.

use std::collections::BTreeMap;

use super::table::{parse_table, SkippedRow, Table, TableOptions};
use super::{DataError, Text};

/// A labelled dataset: texts with class indices into `label_names`. The texts are shared with
/// the table they came from and with subsets (a clone is a reference, not a copy).
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub texts: Vec<Text>,
    pub labels: Vec<usize>,
    pub label_names: Vec<String>,
}

/// What an import read, for the user to check.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImportReport {
    pub delimiter: char,
    pub has_header: bool,
    pub text_column: String,
    pub label_column: String,
    pub rows_read: usize,
    pub rows_used: usize,
    /// Classes in index order with their counts.
    pub classes: Vec<(String, usize)>,
    pub skipped: Vec<SkippedRow>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    pub fn num_classes(&self) -> usize {
        self.label_names.len()
    }

    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.label_names.len()];
        for &l in &self.labels {
            counts[l] += 1;
        }
        counts
    }

    /// The rows at `indices`, same label names.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        Dataset {
            texts: indices.iter().map(|&i| self.texts[i].clone()).collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            label_names: self.label_names.clone(),
        }
    }
}

impl Table {
    /// Builds the dataset from the chosen columns. Rows with an empty text or label are skipped
    /// and reported; too few classes or too few examples of a class are errors.
    pub fn to_dataset(
        &self,
        text_column: usize,
        label_column: usize,
    ) -> Result<(Dataset, ImportReport), DataError> {
        let (_, texts, raw_labels, skipped) = self.labelled_rows(text_column, label_column)?;
        let label_names = order_labels(&raw_labels);
        let index: BTreeMap<&str, usize> = label_names
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i))
            .collect();
        let labels: Vec<usize> = raw_labels.iter().map(|l| index[l]).collect();
        let dataset = Dataset {
            texts,
            labels,
            label_names,
        };
        let counts = dataset.class_counts();
        if dataset.num_classes() < 2 {
            return Err(DataError::OneClass(dataset.label_names[0].clone()));
        }
        let rare: Vec<String> = dataset
            .label_names
            .iter()
            .zip(&counts)
            .filter(|(_, &n)| n < 2)
            .map(|(l, _)| l.clone())
            .collect();
        if !rare.is_empty() {
            return Err(DataError::RareClass(rare));
        }
        let report = self.report(text_column, label_column, &dataset, skipped);
        Ok((dataset, report))
    }

    /// Builds a separate test set with the training data's classes: each label is matched by
    /// name to `label_names` (the training set's), so class indices agree; a label the training
    /// data lacks is an error naming its row. A class may be absent from the test set.
    pub fn to_test_dataset(
        &self,
        text_column: usize,
        label_column: usize,
        label_names: &[String],
    ) -> Result<(Dataset, ImportReport), DataError> {
        let (used_rows, texts, raw_labels, skipped) =
            self.labelled_rows(text_column, label_column)?;
        let index: BTreeMap<&str, usize> = label_names
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i))
            .collect();
        let mut labels = Vec::with_capacity(raw_labels.len());
        for (i, label) in raw_labels.iter().enumerate() {
            match index.get(label) {
                Some(&c) => labels.push(c),
                None => {
                    return Err(DataError::At {
                        row: used_rows[i],
                        column: Some(format!("column \"{}\"", self.columns[label_column])),
                        message: format!(
                            "the label \"{label}\" is not one of the training data's classes ({})",
                            label_names.join(", ")
                        ),
                    })
                }
            }
        }
        let dataset = Dataset {
            texts,
            labels,
            label_names: label_names.to_vec(),
        };
        let report = self.report(text_column, label_column, &dataset, skipped);
        Ok((dataset, report))
    }

    fn report(
        &self,
        text_column: usize,
        label_column: usize,
        dataset: &Dataset,
        skipped: Vec<SkippedRow>,
    ) -> ImportReport {
        ImportReport {
            delimiter: self.delimiter as char,
            has_header: self.has_header,
            text_column: self.columns[text_column].clone(),
            label_column: self.columns[label_column].clone(),
            rows_read: self.rows.len() + self.ragged.len(),
            rows_used: dataset.len(),
            classes: dataset
                .label_names
                .iter()
                .cloned()
                .zip(dataset.class_counts())
                .collect(),
            skipped,
        }
    }

    /// Row numbers, texts and raw labels of the rows with both, and the rows skipped (empty or
    /// malformed).
    #[allow(clippy::type_complexity)]
    fn labelled_rows(
        &self,
        text_column: usize,
        label_column: usize,
    ) -> Result<(Vec<usize>, Vec<Text>, Vec<&str>, Vec<SkippedRow>), DataError> {
        if text_column >= self.columns.len() || label_column >= self.columns.len() {
            return Err(DataError::Invalid(format!(
                "the file has {} columns",
                self.columns.len()
            )));
        }
        if text_column == label_column {
            return Err(DataError::Invalid(
                "the text and label columns must differ".into(),
            ));
        }
        let text_name = &self.columns[text_column];
        let label_name = &self.columns[label_column];
        let mut skipped = self.ragged.clone();
        let mut used = Vec::new();
        let mut texts = Vec::new();
        let mut raw_labels = Vec::new();
        for (row, fields) in &self.rows {
            let field = &fields[text_column];
            let text = field.trim();
            let label = fields[label_column].trim();
            if text.is_empty() {
                skipped.push(SkippedRow {
                    row: *row,
                    reason: format!("column \"{text_name}\": empty text"),
                });
            } else if label.is_empty() {
                skipped.push(SkippedRow {
                    row: *row,
                    reason: format!("column \"{label_name}\": empty label"),
                });
            } else {
                used.push(*row);
                // The table's own text unless it must be trimmed.
                texts.push(if text.len() == field.len() {
                    field.clone()
                } else {
                    Text::from(text)
                });
                raw_labels.push(label);
            }
        }
        skipped.sort_by_key(|s| s.row);
        if texts.is_empty() {
            return Err(DataError::NoUsableRows(skipped));
        }
        Ok((used, texts, raw_labels, skipped))
    }
}

/// Reads a labelled dataset with the default columns (or those named).
pub fn import_dataset(
    bytes: &[u8],
    opts: &TableOptions,
    text_column: Option<&str>,
    label_column: Option<&str>,
) -> Result<(Dataset, ImportReport), DataError> {
    let table = parse_table(bytes, opts)?;
    let text = match text_column {
        Some(name) => table.column_index(name)?,
        None => table.default_text_column(),
    };
    let label = match label_column {
        Some(name) => table.column_index(name)?,
        None => table.default_label_column(),
    };
    table.to_dataset(text, label)
}

/// Integer labels sort numerically (0, 1, 2, 10), others alphabetically, as `sorted(set(y))`.
fn order_labels(raw: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = raw.iter().map(|l| l.to_string()).collect();
    names.sort_unstable();
    names.dedup();
    if names.iter().all(|n| n.parse::<i64>().is_ok()) {
        names.sort_by_key(|n| n.parse::<i64>().unwrap_or(0));
    }
    names
}
