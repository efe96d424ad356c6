//! What a delimited file's bytes say about it before it is parsed: the delimiter (comma, tab or
//! semicolon), whether the first row is a header, and where a quote opens that never closes.

/// Column names that mark a text column, and a label column (a header holding one is a header).
pub(super) const TEXT_NAMES: &[&str] = &[
    "text", "sentence", "review", "content", "tweet", "document", "body",
];
pub(super) const LABEL_NAMES: &[&str] = &[
    "label",
    "labels",
    "sentiment",
    "class",
    "category",
    "target",
    "y",
];

pub(super) fn looks_like_header(records: &[(usize, Vec<super::Text>)]) -> bool {
    let first = &records[0].1;
    let known = |f: &super::Text| {
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
pub(super) fn sniff_delimiter(bytes: &[u8]) -> u8 {
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
pub(super) fn unterminated_quote_line(bytes: &[u8], delimiter: u8) -> Option<usize> {
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
