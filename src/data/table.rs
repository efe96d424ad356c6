//! Delimited text files: CSV or TSV (delimiter sniffed), header detection, unterminated-quote
//! detection, UTF-8 with or without BOM, and the default text and label columns. Every problem
//! names its row and column.
//!
//! Rows are numbered as a spreadsheet shows them: the first line of the file is row 1 (the header
//! when there is one).
//!
//! What is guessed from the bytes (delimiter, header, an unclosed quote) is in `sniff.rs`.

use super::sniff::{
    looks_like_header, sniff_delimiter, unterminated_quote_line, LABEL_NAMES, TEXT_NAMES,
};
use super::{DataError, Text};

/// A parsed delimited file, before any column is chosen.
#[derive(Debug, Clone)]
pub struct Table {
    pub delimiter: u8,
    pub has_header: bool,
    /// Column names: the header, or `column 1`, `column 2`, ... without one.
    pub columns: Vec<String>,
    /// Data rows (header excluded), each with its spreadsheet row number.
    pub rows: Vec<(usize, Vec<Text>)>,
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
    let mut records: Vec<(usize, Vec<Text>)> = Vec::new();
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
                Ok(s) => fields.push(Text::from(s)),
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
    // Rows of another width are reported and dropped in place (no second list of the rows).
    let mut rows = data;
    let mut ragged = Vec::new();
    rows.retain(|(row, fields)| {
        if fields.len() == width {
            return true;
        }
        ragged.push(SkippedRow {
            row: *row,
            reason: format!(
                "has {} fields, the {} has {width} (an unquoted {} inside a text?)",
                fields.len(),
                if has_header { "header" } else { "first row" },
                delimiter_name(delimiter)
            ),
        });
        false
    });
    rows.shrink_to_fit();
    Ok(Table {
        delimiter,
        has_header,
        columns,
        rows,
        ragged,
    })
}

/// The first rows of a parsed table with what was detected, for the preview.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TablePreview {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub total_rows: usize,
    pub delimiter: char,
    pub has_header: bool,
    pub text_column: usize,
    pub label_column: usize,
    pub ragged: usize,
}

impl Table {
    /// The table's first `rows` rows, its shape and default columns, under the file's name.
    pub fn preview(&self, name: &str, rows: usize) -> TablePreview {
        TablePreview {
            name: name.to_string(),
            columns: self.columns.clone(),
            rows: self
                .rows
                .iter()
                .take(rows)
                .map(|(_, r)| r.iter().map(|f| f.to_string()).collect())
                .collect(),
            total_rows: self.rows.len(),
            delimiter: self.delimiter as char,
            has_header: self.has_header,
            text_column: self.default_text_column(),
            label_column: self.default_label_column(),
            ragged: self.ragged.len(),
        }
    }

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

    /// The column named `name`; an error when there is none, or more than one (which one is
    /// meant would be a guess).
    pub fn column_index(&self, name: &str) -> Result<usize, DataError> {
        let found: Vec<usize> = (0..self.columns.len())
            .filter(|&i| self.columns[i] == name)
            .collect();
        match found.as_slice() {
            [] => Err(DataError::NoColumn {
                name: name.to_string(),
                columns: self.columns.clone(),
            }),
            [one] => Ok(*one),
            many => {
                let numbers: Vec<String> = many.iter().map(|i| (i + 1).to_string()).collect();
                let (last, rest) = numbers.split_last().expect("two or more");
                Err(DataError::Invalid(format!(
                    "{} columns are named \"{name}\" (columns {} and {last}): rename one so that \
                     it is clear which to use",
                    many.len(),
                    rest.join(", ")
                )))
            }
        }
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
}

fn find_named(columns: &[String], names: &[&str]) -> Option<usize> {
    names.iter().find_map(|want| {
        columns
            .iter()
            .position(|c| c.trim().eq_ignore_ascii_case(want))
    })
}

fn delimiter_name(d: u8) -> &'static str {
    match d {
        b'\t' => "tab",
        b';' => "semicolon",
        _ => "comma",
    }
}
