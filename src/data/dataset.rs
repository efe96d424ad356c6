//! Labelled text import: CSV or TSV (delimiter sniffed), header detection, column choice, labels as
//! strings or integers, UTF-8 with or without BOM. Every problem names its row and column.
//!
//! Rows are numbered as a spreadsheet shows them: the first line of the file is row 1 (the header
//! when there is one).

use std::collections::BTreeMap;

use super::DataError;

/// A parsed delimited file, before any column is chosen.
#[derive(Debug, Clone)]
pub struct Table {
    pub delimiter: u8,
    pub has_header: bool,
    /// Column names: the header, or `column 1`, `column 2`, ... without one.
    pub columns: Vec<String>,
    /// Data rows (header excluded), each with its spreadsheet row number.
    pub rows: Vec<(usize, Vec<String>)>,
    /// Rows that had a different number of fields than the header or first row.
    pub ragged: Vec<SkippedRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SkippedRow {
    pub row: usize,
    pub reason: String,
}

/// Options of an import. `None` means "detect".
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TableOptions {
    pub delimiter: Option<u8>,
    pub has_header: Option<bool>,
}

/// A labelled dataset: texts with class indices into `label_names`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub texts: Vec<String>,
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

const TEXT_NAMES: &[&str] = &[
    "text", "sentence", "review", "content", "tweet", "document", "body",
];
const LABEL_NAMES: &[&str] = &[
    "label",
    "labels",
    "sentiment",
    "class",
    "category",
    "target",
    "y",
];

/// Parses CSV or TSV bytes into a table.
pub fn parse_table(bytes: &[u8], opts: &TableOptions) -> Result<Table, DataError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(DataError::Empty);
    }
    let delimiter = opts.delimiter.unwrap_or_else(|| sniff_delimiter(bytes));
    if let Some(line) = unterminated_quote_line(bytes, delimiter) {
        return Err(DataError::UnterminatedQuote { line });
    }
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut records: Vec<(usize, Vec<String>)> = Vec::new();
    let mut record = csv::ByteRecord::new();
    let mut row = 0usize;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                return Err(DataError::At {
                    row: row + 1,
                    column: None,
                    message: format!("cannot parse: {e}"),
                })
            }
        }
        row += 1;
        let mut fields = Vec::with_capacity(record.len());
        for (c, field) in record.iter().enumerate() {
            match std::str::from_utf8(field) {
                Ok(s) => fields.push(s.to_string()),
                Err(_) => {
                    return Err(DataError::At {
                        row,
                        column: Some(format!("column {}", c + 1)),
                        message: "is not valid UTF-8 (save the file as UTF-8)".into(),
                    })
                }
            }
        }
        // A line holding only the delimiter-free empty string is a blank line: skip it.
        if fields.len() == 1 && fields[0].trim().is_empty() {
            continue;
        }
        records.push((row, fields));
    }
    if records.is_empty() {
        return Err(DataError::Empty);
    }
    let has_header = opts
        .has_header
        .unwrap_or_else(|| looks_like_header(&records));
    let (columns, data) = if has_header {
        let (_, header) = records.remove(0);
        let columns: Vec<String> = header
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let h = h.trim();
                if h.is_empty() {
                    format!("column {}", i + 1)
                } else {
                    h.to_string()
                }
            })
            .collect();
        (columns, records)
    } else {
        let n = records[0].1.len();
        ((1..=n).map(|i| format!("column {i}")).collect(), records)
    };
    if data.is_empty() {
        return Err(DataError::HeaderOnly);
    }
    let width = columns.len();
    let mut rows = Vec::with_capacity(data.len());
    let mut ragged = Vec::new();
    for (row, fields) in data {
        if fields.len() != width {
            ragged.push(SkippedRow {
                row,
                reason: format!(
                    "has {} fields, the {} has {width} (an unquoted {} inside a text?)",
                    fields.len(),
                    if has_header { "header" } else { "first row" },
                    delimiter_name(delimiter)
                ),
            });
        } else {
            rows.push((row, fields));
        }
    }
    Ok(Table {
        delimiter,
        has_header,
        columns,
        rows,
        ragged,
    })
}

impl Table {
    /// The default text column: one named like a text column, else the one with the longest
    /// average field.
    pub fn default_text_column(&self) -> usize {
        if let Some(i) = find_named(&self.columns, TEXT_NAMES) {
            return i;
        }
        let label = find_named(&self.columns, LABEL_NAMES);
        (0..self.columns.len())
            .filter(|&c| Some(c) != label)
            .max_by_key(|&c| self.rows.iter().map(|(_, r)| r[c].len()).sum::<usize>())
            .unwrap_or(0)
    }

    /// The default label column: one named like a label column, else the column (other than the
    /// text) with the fewest distinct values.
    pub fn default_label_column(&self) -> usize {
        if let Some(i) = find_named(&self.columns, LABEL_NAMES) {
            return i;
        }
        let text = self.default_text_column();
        (0..self.columns.len())
            .filter(|&c| c != text)
            .min_by_key(|&c| {
                let mut values: Vec<&str> = self.rows.iter().map(|(_, r)| r[c].trim()).collect();
                values.sort_unstable();
                values.dedup();
                values.len()
            })
            .unwrap_or(text)
    }

    pub fn column_index(&self, name: &str) -> Result<usize, DataError> {
        self.columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| DataError::NoColumn {
                name: name.to_string(),
                columns: self.columns.clone(),
            })
    }

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
        let labels: Vec<usize> = raw_labels.iter().map(|l| index[l.as_str()]).collect();
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
            match index.get(label.as_str()) {
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

    /// The columns of this table that correspond to `train`'s chosen ones: by name when both
    /// files have a header, else by position.
    pub fn matching_columns(
        &self,
        train: &Table,
        text_column: usize,
        label_column: usize,
    ) -> Result<(usize, usize), DataError> {
        if self.has_header && train.has_header {
            let text = self.column_index(&train.columns[text_column])?;
            let label = self.column_index(&train.columns[label_column])?;
            return Ok((text, label));
        }
        if text_column >= self.columns.len() || label_column >= self.columns.len() {
            return Err(DataError::Invalid(format!(
                "the test file has {} column(s); the training data's text and label are columns {} and {}",
                self.columns.len(),
                text_column + 1,
                label_column + 1
            )));
        }
        Ok((text_column, label_column))
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
    ) -> Result<(Vec<usize>, Vec<String>, Vec<String>, Vec<SkippedRow>), DataError> {
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
            let text = fields[text_column].trim();
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
                texts.push(text.to_string());
                raw_labels.push(label.to_string());
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
fn order_labels(raw: &[String]) -> Vec<String> {
    let mut names: Vec<String> = raw.to_vec();
    names.sort_unstable();
    names.dedup();
    if names.iter().all(|n| n.parse::<i64>().is_ok()) {
        names.sort_by_key(|n| n.parse::<i64>().unwrap_or(0));
    }
    names
}

fn find_named(columns: &[String], names: &[&str]) -> Option<usize> {
    names.iter().find_map(|want| {
        columns
            .iter()
            .position(|c| c.trim().eq_ignore_ascii_case(want))
    })
}

fn looks_like_header(records: &[(usize, Vec<String>)]) -> bool {
    let first = &records[0].1;
    let known = |f: &String| {
        let f = f.trim();
        TEXT_NAMES
            .iter()
            .chain(LABEL_NAMES)
            .any(|n| f.eq_ignore_ascii_case(n))
    };
    if first.iter().any(known) {
        return true;
    }
    // A column whose values are all numbers below the first row but not in it.
    let rest = &records[1..];
    if rest.is_empty() {
        return false;
    }
    (0..first.len()).any(|c| {
        first[c].trim().parse::<f64>().is_err()
            && rest
                .iter()
                .all(|(_, r)| r.get(c).is_some_and(|v| v.trim().parse::<f64>().is_ok()))
    })
}

/// Picks the delimiter (comma, tab or semicolon) that splits the first lines most consistently.
fn sniff_delimiter(bytes: &[u8]) -> u8 {
    let sample = &bytes[..bytes.len().min(64 * 1024)];
    let mut best = (b',', 0usize);
    for d in [b',', b'\t', b';'] {
        let mut counts = Vec::new();
        let (mut n, mut in_quote) = (0usize, false);
        for &b in sample {
            match b {
                b'"' => in_quote = !in_quote,
                b'\n' if !in_quote => {
                    counts.push(n);
                    n = 0;
                    if counts.len() == 20 {
                        break;
                    }
                }
                _ if b == d && !in_quote => n += 1,
                _ => {}
            }
        }
        if n > 0 {
            counts.push(n);
        }
        // Score: lines split consistently by this delimiter.
        let Some(&first) = counts.first() else {
            continue;
        };
        if first == 0 {
            continue;
        }
        let consistent = counts.iter().filter(|&&c| c == first).count();
        if consistent > best.1 {
            best = (d, consistent);
        }
    }
    best.0
}

/// The line where a quote opens that never closes, if any (RFC 4180 quoting).
fn unterminated_quote_line(bytes: &[u8], delimiter: u8) -> Option<usize> {
    let mut in_quote = false;
    let mut field_start = true;
    let mut line = 1usize;
    let mut open_line = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_quote {
            if b == b'"' {
                if bytes.get(i + 1) == Some(&b'"') {
                    i += 1;
                } else {
                    in_quote = false;
                }
            } else if b == b'\n' {
                line += 1;
            }
        } else {
            match b {
                b'"' if field_start => {
                    in_quote = true;
                    open_line = line;
                }
                b'\n' => {
                    line += 1;
                    field_start = true;
                    i += 1;
                    continue;
                }
                _ if b == delimiter => {
                    field_start = true;
                    i += 1;
                    continue;
                }
                _ => {}
            }
            field_start = false;
        }
        i += 1;
    }
    in_quote.then_some(open_line)
}

fn delimiter_name(d: u8) -> &'static str {
    match d {
        b'\t' => "tab",
        b';' => "semicolon",
        _ => "comma",
    }
}
