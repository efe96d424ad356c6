//! Dataset import and splits: what is read, and every bad input's message.

mod common;

use common::*;
use tunelab::data::{
    import_dataset, parse_table, stratified_split, DataError, SkippedRow, TableOptions, Text,
};

fn import(text: &str) -> Result<(tunelab::data::Dataset, tunelab::data::ImportReport), DataError> {
    import_dataset(text.as_bytes(), &TableOptions::default(), None, None)
}

#[test]
fn reads_the_movie_reviews_csv() {
    let (data, report) = import_dataset(
        &read(data_file("movie_reviews.csv")),
        &TableOptions::default(),
        None,
        None,
    )
    .unwrap();
    assert_eq!(data.len(), 10_568);
    assert_eq!(data.label_names, vec!["negative", "positive"]);
    assert_eq!(
        report.classes,
        vec![
            ("negative".to_string(), 5326),
            ("positive".to_string(), 5242)
        ]
    );
    assert_eq!(
        (report.text_column.as_str(), report.label_column.as_str()),
        ("text", "label")
    );
    assert_eq!(report.delimiter, ',');
    assert!(report.has_header);
    assert!(report.skipped.is_empty());
}

#[test]
fn tsv_with_bom_integer_labels_and_other_column_names() {
    let tsv = "\u{feff}id\treview\tsentiment\n1\tgreat film\t1\n2\tawful, truly\t0\n3\tfine\t1\n4\tbad\t0\n";
    let (data, report) = import(tsv).unwrap();
    assert_eq!(report.delimiter, '\t');
    assert_eq!(report.text_column, "review");
    assert_eq!(report.label_column, "sentiment");
    assert_eq!(data.label_names, vec!["0", "1"]);
    assert_eq!(&*data.texts[1], "awful, truly");
    assert_eq!(data.labels, vec![1, 0, 1, 0]);
}

#[test]
fn integer_labels_sort_numerically_and_columns_can_be_named() {
    let csv = "a,b\nx one,10\nx two,2\nx three,10\nx four,2\n";
    let (data, _) = import_dataset(
        csv.as_bytes(),
        &TableOptions::default(),
        Some("a"),
        Some("b"),
    )
    .unwrap();
    assert_eq!(data.label_names, vec!["2", "10"]);
}

#[test]
fn headerless_files_get_numbered_columns_and_a_guessed_layout() {
    let csv = "a long text about films,positive\nanother long review text,negative\nyet more words here,positive\nand the last one,negative\n";
    let table = parse_table(csv.as_bytes(), &TableOptions::default()).unwrap();
    assert!(!table.has_header);
    assert_eq!(table.columns, vec!["column 1", "column 2"]);
    let (data, report) = import(csv).unwrap();
    assert_eq!(report.text_column, "column 1");
    assert_eq!(data.len(), 4);
}

#[test]
fn quoted_fields_with_commas_newlines_and_quotes() {
    let csv =
        "text,label\n\"Hello, \"\"world\"\"\nsecond line\",pos\nplain,neg\nmore,pos\nagain,neg\n";
    let (data, _) = import(csv).unwrap();
    assert_eq!(&*data.texts[0], "Hello, \"world\"\nsecond line");
}

#[test]
fn empty_text_and_empty_label_rows_are_skipped_and_reported() {
    let csv = "text,label\ngood,pos\n,neg\nbad,\nnice,pos\nugly,neg\npoor,neg\n";
    let (data, report) = import(csv).unwrap();
    assert_eq!(data.len(), 4);
    assert_eq!(
        report.skipped,
        vec![
            SkippedRow {
                row: 3,
                reason: "column \"text\": empty text".into()
            },
            SkippedRow {
                row: 4,
                reason: "column \"label\": empty label".into()
            },
        ]
    );
    assert_eq!(report.rows_read, 6);
}

#[test]
fn ragged_rows_are_skipped_with_their_row_number() {
    let csv = "text,label\ngood,pos\nbad, really bad,neg\nnice,pos\nugly,neg\npoor,neg\n";
    let (data, report) = import(csv).unwrap();
    assert_eq!(data.len(), 4);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].row, 3);
    assert_eq!(
        report.skipped[0].reason,
        "has 3 fields, the header has 2 (an unquoted comma inside a text?)"
    );
}

#[test]
fn bad_files_give_messages_naming_row_and_column() {
    let msg = |text: &[u8]| {
        import_dataset(text, &TableOptions::default(), None, None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "no error".into())
    };
    assert_eq!(msg(b""), "the file is empty");
    assert_eq!(msg(b"  \n\n"), "the file is empty");
    assert_eq!(
        msg(b"text,label\n"),
        "the file has a header row and no data rows"
    );
    assert_eq!(
        msg(b"text,label\ngood,pos\n\"never closed,neg\nbad,neg\n"),
        "line 3: a quote opens here and is never closed"
    );
    assert_eq!(
        msg(b"text,label\ngood,pos\nbad \xff\xfe,neg\n"),
        "row 3, column 1: is not valid UTF-8 (save the file as UTF-8)"
    );
    assert_eq!(
        msg(b"text,label\ngood,pos\nbad,pos\nok,pos\n"),
        "every row has the label \"pos\": training needs at least 2 classes"
    );
    assert_eq!(
        msg(b"text,label\ngood,pos\nbad,neg\nok,pos\nmeh,neg\nwow,other\n"),
        "class \"other\" has a single example: each class needs at least 2 (one to train, one to test)"
    );
    assert_eq!(
        msg(b"text,label\n,pos\n,neg\n"),
        "no usable rows: row 2 column \"text\": empty text; row 3 column \"text\": empty text"
    );
    let err = import_dataset(
        b"text,label\na,b\nc,d\n",
        &TableOptions::default(),
        Some("review"),
        None,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no column named \"review\" (the columns are: text, label)"
    );
}

#[test]
fn stratified_split_is_seeded_and_keeps_class_shares() {
    let labels: Vec<usize> = (0..1000).map(|i| if i % 4 == 0 { 1 } else { 0 }).collect();
    let a = stratified_split(&labels, 2, 0.2, 42).unwrap();
    let b = stratified_split(&labels, 2, 0.2, 42).unwrap();
    let c = stratified_split(&labels, 2, 0.2, 43).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.test, c.test);
    assert_eq!(a.test.len(), 200);
    assert_eq!(a.train.len(), 800);
    let positives = a.test.iter().filter(|&&i| labels[i] == 1).count();
    assert_eq!(positives, 50, "25% of the test part, as in the whole");
    let mut all: Vec<usize> = a.train.iter().chain(&a.test).copied().collect();
    all.sort();
    assert_eq!(all, (0..1000).collect::<Vec<_>>(), "a partition");
}

#[test]
fn tiny_classes_keep_one_example_on_each_side() {
    let labels = vec![0, 0, 0, 0, 0, 0, 0, 0, 1, 1];
    let s = stratified_split(&labels, 2, 0.2, 1).unwrap();
    assert_eq!(s.test.len(), 2);
    assert!(s.test.iter().any(|&i| labels[i] == 1));
    assert!(s.train.iter().any(|&i| labels[i] == 1));
    assert!(stratified_split(&labels, 2, 1.5, 1).is_err());
}

#[test]
fn a_separate_test_file_uses_the_training_classes_and_columns() {
    let opts = TableOptions::default();
    let train = parse_table(
        b"text,label\na,neg\nb,pos\nc,neutral\nd,neg\ne,pos\nf,neutral\n",
        &opts,
    )
    .unwrap();
    let (train_set, _) = train.to_dataset(0, 1).unwrap();
    assert_eq!(train_set.label_names, ["neg", "neutral", "pos"]);

    // Columns in another order, found by name; one class absent; an empty row skipped.
    let test = parse_table(b"label,id,text\npos,1,x\npos,2,y\n,3,z\nneg,4,w\n", &opts).unwrap();
    let (tc, lc) = test.matching_columns(&train, 0, 1).unwrap();
    assert_eq!((tc, lc), (2, 0));
    let (test_set, report) = test
        .to_test_dataset(tc, lc, &train_set.label_names)
        .unwrap();
    assert_eq!(test_set.texts, ["x", "y", "w"].map(Text::from));
    assert_eq!(test_set.labels, [2, 2, 0]);
    assert_eq!(test_set.label_names, train_set.label_names);
    assert_eq!(report.rows_used, 3);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.classes[1], ("neutral".to_string(), 0));

    // A label the training data does not have.
    let odd = parse_table(b"text,label\nx,pos\ny,positive\n", &opts).unwrap();
    let (tc, lc) = odd.matching_columns(&train, 0, 1).unwrap();
    let err = odd
        .to_test_dataset(tc, lc, &train_set.label_names)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "row 3, column \"label\": the label \"positive\" is not one of the training data's classes (neg, neutral, pos)"
    );

    // A missing column by name.
    let other = parse_table(b"sentence,sentiment\nx,pos\ny,neg\n", &opts).unwrap();
    let err = other
        .matching_columns(&train, 0, 1)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "no column named \"text\" (the columns are: sentence, sentiment)"
    );

    // Without headers, columns go by position.
    let bare = parse_table(
        b"x,pos\ny,neg\n",
        &TableOptions {
            delimiter: None,
            has_header: Some(false),
        },
    )
    .unwrap();
    assert_eq!(bare.matching_columns(&train, 0, 1).unwrap(), (0, 1));
    let narrow = parse_table(
        b"x\ny\n",
        &TableOptions {
            delimiter: None,
            has_header: Some(false),
        },
    )
    .unwrap();
    assert!(narrow
        .matching_columns(&train, 0, 1)
        .unwrap_err()
        .to_string()
        .contains("the test file has 1 column(s)"));
}

#[test]
fn a_column_name_used_twice_is_refused_not_silently_the_first() {
    // Two "text" columns: by name, which one is meant is unclear (the first used to win).
    let err = import_dataset(
        b"text,label,text\nfirst,pos,second\nmore,neg,other\n",
        &TableOptions::default(),
        Some("text"),
        Some("label"),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "2 columns are named \"text\" (columns 1 and 3): rename one so that it is clear which to use"
    );
    // The same when a separate test file is matched to the training columns by name.
    let opts = TableOptions::default();
    let train = parse_table(b"text,label\na,neg\nb,pos\n", &opts).unwrap();
    let test = parse_table(b"label,text,text\npos,x,y\nneg,z,w\n", &opts).unwrap();
    let err = test.matching_columns(&train, 0, 1).unwrap_err().to_string();
    assert!(
        err.starts_with("2 columns are named \"text\" (columns 2 and 3)"),
        "{err}"
    );
    // A name used once is found as before.
    let ok = parse_table(b"label,text,id\npos,x,1\nneg,y,2\n", &opts).unwrap();
    assert_eq!(ok.column_index("text").unwrap(), 1);
}

#[test]
fn a_big_files_texts_are_held_once_by_the_table_and_every_set_built_from_it() {
    let mut csv = String::from("text,label\n");
    for i in 0..200 {
        csv.push_str(&format!(
            "\"review {i}, with a comma\",{}\n",
            ["pos", "neg"][i % 2]
        ));
    }
    csv.push_str("  padded text  ,pos\n");
    let table = parse_table(csv.as_bytes(), &TableOptions::default()).unwrap();
    let (data, _) = table.to_dataset(0, 1).unwrap();
    let split = stratified_split(&data.labels, 2, 0.25, 7).unwrap();
    let (train, test) = (data.subset(&split.train), data.subset(&split.test));
    // Each text is one allocation: the table's field, the dataset's and the splits' are the same.
    for (i, (_, fields)) in table.rows.iter().take(200).enumerate() {
        assert!(
            std::sync::Arc::ptr_eq(&fields[0], &data.texts[i]),
            "row {i} was copied"
        );
    }
    for (set, indices) in [(&train, &split.train), (&test, &split.test)] {
        for (t, &i) in set.texts.iter().zip(indices) {
            assert!(std::sync::Arc::ptr_eq(t, &data.texts[i]));
        }
    }
    // A text that must be trimmed is the one copy made.
    assert_eq!(&*data.texts[200], "padded text");
    assert!(!std::sync::Arc::ptr_eq(
        &table.rows[200].1[0],
        &data.texts[200]
    ));
    let _: &Text = &data.texts[0];
}
