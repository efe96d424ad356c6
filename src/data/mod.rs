//! Labelled datasets: import (CSV/TSV) and splits.

mod dataset;
mod sniff;
mod split;
mod table;

pub use dataset::{import_dataset, Dataset, ImportReport};
pub use split::{stratified_sample, stratified_split, Split};
pub use table::{parse_table, SkippedRow, Table, TableOptions, TablePreview};

/// A field of a table, shared (not copied) by the datasets built from it: a big file's texts
/// are held once.
pub type Text = std::sync::Arc<str>;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DataError {
    #[error("the file is empty")]
    Empty,
    #[error("the file has a header row and no data rows")]
    HeaderOnly,
    #[error("line {line}: a quote opens here and is never closed")]
    UnterminatedQuote { line: usize },
    #[error("row {row}{}: {message}", column.as_ref().map(|c| format!(", {c}")).unwrap_or_default())]
    At {
        row: usize,
        column: Option<String>,
        message: String,
    },
    #[error("no column named \"{name}\" (the columns are: {})", columns.join(", "))]
    NoColumn { name: String, columns: Vec<String> },
    #[error("no usable rows: {}", describe_skipped(.0))]
    NoUsableRows(Vec<SkippedRow>),
    #[error("every row has the label \"{0}\": training needs at least 2 classes")]
    OneClass(String),
    #[error("class {} has a single example: each class needs at least 2 (one to train, one to test)", .0.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", "))]
    RareClass(Vec<String>),
    #[error("{0}")]
    Invalid(String),
}

fn describe_skipped(rows: &[SkippedRow]) -> String {
    let mut parts: Vec<String> = rows
        .iter()
        .take(3)
        .map(|s| format!("row {} {}", s.row, s.reason))
        .collect();
    if rows.len() > 3 {
        parts.push(format!("and {} more", rows.len() - 3));
    }
    parts.join("; ")
}
