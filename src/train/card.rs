//! The model card of a fine-tuned model: the `README.md` of its exported folder, with the Hub's
//! metadata header (base model, pipeline tag, the test metrics as `model-index` results) and
//! what a reader needs to trust and repeat the run: the data file (name, SHA-256, rows, class
//! balance), the training arguments, each epoch's evaluation, the confusion matrix, the backend
//! and the time taken.

use std::fmt::Write;

use crate::data::ImportReport;
use crate::hub::check_model_id;
use crate::metrics::Metrics;

use super::{Outcome, TrainingArgs};

/// The data a model was trained on, as the card describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFacts {
    /// The file's name as the user chose it.
    pub file: String,
    /// SHA-256 of the file's bytes, in hex.
    pub sha256: String,
    pub report: ImportReport,
    pub train_rows: usize,
    pub test_rows: usize,
    /// The separate test file's name, when the test set came from one.
    pub test_file: Option<String>,
}

/// Everything a model card says about a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFacts {
    /// The base model: a Hub id, or the name of files chosen on disk.
    pub base_model: String,
    pub labels: Vec<String>,
    pub args: TrainingArgs,
    pub data: DataFacts,
    /// (epoch, test loss, test metrics) after each finished epoch.
    pub history: Vec<(usize, f64, Metrics)>,
    pub outcome: Outcome,
    pub steps: usize,
    pub elapsed_s: f64,
    /// The backend, as the status line describes it ("WebGPU (…)", "CPU (…)").
    pub backend: String,
    /// When training ended (ISO 8601).
    pub finished_at: String,
}

/// SHA-256 of `bytes` in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A YAML string, quoted (JSON strings are valid YAML).
fn yaml(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A table cell: no line breaks, pipes escaped.
fn cell(s: &str) -> String {
    s.replace(['\n', '\r'], " ").replace('|', "\\|")
}

/// The `README.md` of the exported folder named `name`: a plain transformers folder, or
/// (`adapter`) a PEFT LoRA adapter folder.
pub fn model_card(name: &str, run: &RunFacts, adapter: bool) -> String {
    let mut out = String::new();
    let last = run.history.last();
    // The Hub's metadata header.
    out.push_str("---\n");
    if check_model_id(&run.base_model).is_ok() {
        let _ = writeln!(out, "base_model: {}", yaml(&run.base_model));
    }
    if adapter {
        out.push_str("library_name: peft\npipeline_tag: text-classification\n");
        out.push_str("tags:\n- text-classification\n- lora\n- peft\n- tunelab\n");
    } else {
        out.push_str("library_name: transformers\npipeline_tag: text-classification\n");
        out.push_str("tags:\n- text-classification\n- tunelab\n");
    }
    let _ = writeln!(out, "model-index:\n- name: {}\n  results:", yaml(name));
    if let Some((_, _, m)) = last {
        out.push_str(
            "  - task:\n      type: text-classification\n      name: Text Classification\n",
        );
        let _ = writeln!(
            out,
            "    dataset:\n      name: {}\n      type: csv",
            yaml(&run.data.file)
        );
        out.push_str("    metrics:\n");
        let average = &m.average;
        for (kind, value, label) in [
            ("accuracy", m.accuracy, "Accuracy".to_string()),
            ("precision", m.precision, format!("Precision ({average})")),
            ("recall", m.recall, format!("Recall ({average})")),
            ("f1", m.f1, format!("F1 ({average})")),
        ] {
            let _ = writeln!(
                out,
                "    - type: {kind}\n      value: {value:.6}\n      name: {}",
                yaml(&label)
            );
        }
    }
    out.push_str("---\n\n");

    let _ = writeln!(out, "# {name}\n");
    let _ = writeln!(
        out,
        "A text classifier fine-tuned from `{}` on `{}`, in a web browser with Tunelab (nothing \
         left the browser). Labels: {}.\n",
        run.base_model,
        run.data.file,
        run.labels
            .iter()
            .map(|l| format!("`{l}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if adapter {
        let _ = writeln!(
            out,
            "A LoRA adapter (PEFT) with the classification head saved in full; the label names are \
             in `labels.json`.\n"
        );
        let _ = writeln!(
            out,
            "```python\nimport json\nfrom peft import PeftModel\nfrom transformers import \
             AutoModelForSequenceClassification, AutoTokenizer, pipeline\n\n\
             folder = \"path/to/{name}\"\nlabels = json.load(open(f\"{{folder}}/labels.json\"))\n\
             id2label = {{int(k): v for k, v in labels[\"id2label\"].items()}}\n\
             base = AutoModelForSequenceClassification.from_pretrained(\n    {}, \
             num_labels=len(id2label), id2label=id2label,\n    \
             label2id=labels[\"label2id\"], ignore_mismatched_sizes=True)\n\
             model = PeftModel.from_pretrained(base, folder)\n\
             classifier = pipeline(\"text-classification\", model=model, \
             tokenizer=AutoTokenizer.from_pretrained(folder))\nclassifier(\"Your text here\")\n```\n",
            yaml(&run.base_model)
        );
    } else {
        out.push_str("```python\nfrom transformers import pipeline\n\n");
        let _ = writeln!(
            out,
            "classifier = pipeline(\"text-classification\", model=\"path/to/{name}\")\nclassifier(\"Your text here\")\n```\n"
        );
    }

    // The data.
    let r = &run.data.report;
    out.push_str("## Training data\n\n");
    let _ = writeln!(out, "- File: `{}`", run.data.file);
    let _ = writeln!(out, "- SHA-256: `{}`", run.data.sha256);
    let _ = writeln!(
        out,
        "- Columns: text `{}`, label `{}`",
        r.text_column, r.label_column
    );
    let _ = writeln!(
        out,
        "- Rows: {} read, {} used, {} skipped (empty or malformed)",
        r.rows_read,
        r.rows_used,
        r.skipped.len()
    );
    match &run.data.test_file {
        Some(f) => {
            let _ = writeln!(
                out,
                "- Split: {} rows to train on; {} test rows from the separate file `{f}`",
                run.data.train_rows, run.data.test_rows
            );
        }
        None => {
            let _ = writeln!(
                out,
                "- Split: {} rows to train on, {} held out to test (stratified, seed {})",
                run.data.train_rows, run.data.test_rows, run.args.seed
            );
        }
    }
    out.push_str("\n| class | rows | share |\n|---|---|---|\n");
    let total: usize = r.classes.iter().map(|(_, n)| n).sum::<usize>().max(1);
    for (class, n) in &r.classes {
        let _ = writeln!(
            out,
            "| {} | {n} | {:.1}% |",
            cell(class),
            100.0 * *n as f64 / total as f64
        );
    }

    // The run.
    out.push_str("\n## Training\n\n");
    let _ = writeln!(out, "- Backend: {}", run.backend);
    let _ = writeln!(
        out,
        "- Time: {:.1} s, {} optimisation steps, finished {}",
        run.elapsed_s, run.steps, run.finished_at
    );
    let _ = writeln!(
        out,
        "- Outcome: {}",
        match &run.outcome {
            Outcome::Completed => "completed".to_string(),
            Outcome::Cancelled =>
                "stopped by the user; the weights are those of the last finished step".to_string(),
            Outcome::Diverged(m) => format!("stopped: {m}"),
        }
    );
    out.push_str("\n| argument | value |\n|---|---|\n");
    if let Ok(serde_json::Value::Object(args)) = serde_json::to_value(&run.args) {
        for (k, v) in args {
            if k == "lora" && run.args.mode != super::Mode::Lora {
                continue;
            }
            let v = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            let _ = writeln!(out, "| `{k}` | {} |", cell(&v));
        }
    }

    // The evaluations.
    out.push_str("\n## Evaluation\n\n");
    if run.history.is_empty() {
        out.push_str("No epoch finished, so the model was not evaluated.\n");
        return out;
    }
    out.push_str("On the test rows after each epoch:\n\n| epoch | loss | accuracy | precision | recall | f1 |\n|---|---|---|---|---|---|\n");
    for (epoch, loss, m) in &run.history {
        let _ = writeln!(
            out,
            "| {epoch} | {loss:.4} | {:.4} | {:.4} | {:.4} | {:.4} |",
            m.accuracy, m.precision, m.recall, m.f1
        );
    }
    if let Some((epoch, _, m)) = last {
        let _ = writeln!(
            out,
            "\nConfusion matrix after epoch {epoch} (rows: true class, columns: predicted):\n"
        );
        let names: Vec<String> = (0..m.confusion.len())
            .map(|i| cell(run.labels.get(i).map(String::as_str).unwrap_or("?")))
            .collect();
        let _ = writeln!(out, "| | {} |", names.join(" | "));
        let _ = writeln!(out, "|---|{}", "---|".repeat(names.len()));
        for (i, row) in m.confusion.iter().enumerate() {
            let counts: Vec<String> = row.iter().map(|n| n.to_string()).collect();
            let _ = writeln!(out, "| **{}** | {} |", names[i], counts.join(" | "));
        }
        out.push_str("\n| class | precision | recall | f1 | support |\n|---|---|---|---|---|\n");
        for c in &m.per_class {
            let _ = writeln!(
                out,
                "| {} | {:.4} | {:.4} | {:.4} | {} |",
                cell(&c.label),
                c.precision,
                c.recall,
                c.f1,
                c.support
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{evaluate, Average};

    fn run() -> RunFacts {
        let labels: Vec<String> = vec!["negative".into(), "positive".into()];
        let m1 = evaluate(
            &[0, 0, 1, 1],
            &[0, 1, 1, 1],
            &labels,
            Average::Binary { positive: 1 },
        );
        let m2 = evaluate(
            &[0, 0, 1, 1],
            &[0, 0, 1, 0],
            &labels,
            Average::Binary { positive: 1 },
        );
        RunFacts {
            base_model: "sentence-transformers/all-MiniLM-L6-v2".into(),
            labels: labels.clone(),
            args: TrainingArgs::default(),
            data: DataFacts {
                file: "reviews|2026.csv".into(),
                sha256: sha256_hex(b"text,label\n"),
                report: ImportReport {
                    delimiter: ',',
                    has_header: true,
                    text_column: "text".into(),
                    label_column: "label".into(),
                    rows_read: 21,
                    rows_used: 20,
                    classes: vec![("negative".into(), 12), ("positive".into(), 8)],
                    skipped: vec![crate::data::SkippedRow {
                        row: 5,
                        reason: "empty text".into(),
                    }],
                },
                train_rows: 16,
                test_rows: 4,
                test_file: None,
            },
            history: vec![(1, 0.61, m1), (2, 0.4321, m2)],
            outcome: Outcome::Completed,
            steps: 6,
            elapsed_s: 12.34,
            backend: "CPU (no WebGPU adapter)".into(),
            finished_at: "2026-11-27T10:30:00Z".into(),
        }
    }

    #[test]
    fn the_card_has_the_hub_header_the_data_the_arguments_and_each_evaluation() {
        let card = model_card("all-MiniLM-L6-v2-finetuned", &run(), false);
        // The metadata header, with the last evaluation's metrics.
        assert!(card.starts_with("---\nbase_model: \"sentence-transformers/all-MiniLM-L6-v2\"\n"));
        assert!(card.contains("pipeline_tag: text-classification\n"));
        assert!(card.contains("- name: \"all-MiniLM-L6-v2-finetuned\"\n  results:\n"));
        assert!(card.contains("      name: \"reviews|2026.csv\"\n      type: csv\n"));
        assert!(card.contains("    - type: accuracy\n      value: 0.750000\n"));
        assert!(
            card.contains("    - type: f1\n      value: 0.666667\n      name: \"F1 (binary)\"\n")
        );
        assert_eq!(card.matches("\n---\n").count(), 1, "one header");
        // The data: its hash, rows and class balance.
        assert!(
            card.contains(
                "- SHA-256: `22a0ff7e2dfd5a2ab1b50c8bb08ac6b6cc5a0d3dcd4c12bc5be9c0a3b7f3f1a8`"
            ) || card.contains(&format!("- SHA-256: `{}`", sha256_hex(b"text,label\n")))
        );
        assert!(card.contains("- Rows: 21 read, 20 used, 1 skipped"));
        assert!(
            card.contains("- Split: 16 rows to train on, 4 held out to test (stratified, seed 42)")
        );
        assert!(card.contains("| negative | 12 | 60.0% |\n| positive | 8 | 40.0% |"));
        // The run: backend, time, every argument.
        assert!(card.contains("- Backend: CPU (no WebGPU adapter)"));
        assert!(
            card.contains("- Time: 12.3 s, 6 optimisation steps, finished 2026-11-27T10:30:00Z")
        );
        assert!(
            card.contains("| `learning_rate` | 5e-5 |")
                || card.contains("| `learning_rate` | 0.00005 |")
        );
        assert!(card.contains("| `mode` | Full |"));
        // Each epoch, and the last one's confusion matrix (rows true, columns predicted).
        assert!(card.contains("| 1 | 0.6100 | 0.7500 |"));
        assert!(card.contains("| 2 | 0.4321 | 0.7500 |"));
        assert!(card.contains("| | negative | positive |\n|---|---|---|\n| **negative** | 2 | 0 |\n| **positive** | 1 | 1 |"));
    }

    #[test]
    fn a_base_model_from_disk_is_named_but_not_claimed_as_a_hub_id() {
        let mut r = run();
        r.base_model = "local model".into();
        r.history.clear();
        let card = model_card("x", &r, false);
        assert!(!card.contains("base_model:"));
        assert!(card.contains("fine-tuned from `local model`"));
        assert!(card.contains("No epoch finished"));
    }

    #[test]
    fn an_adapter_card_says_peft_shows_how_to_load_it_and_lists_the_lora_settings() {
        let mut r = run();
        r.args = TrainingArgs::lora_defaults();
        let card = model_card("minilm-lora", &r, true);
        assert!(card.contains("library_name: peft\n"));
        assert!(card.contains("- lora\n- peft\n"));
        assert!(card.contains("PeftModel.from_pretrained(base, folder)"));
        assert!(
            card.contains("\"sentence-transformers/all-MiniLM-L6-v2\", num_labels=len(id2label)")
        );
        assert!(card.contains("| `mode` | Lora |"));
        assert!(card.contains("| `lora` | {"));
        // A plain card has no LoRA row.
        assert!(!model_card("x", &run(), false).contains("| `lora` |"));
    }

    #[test]
    fn sha256_matches_the_standard_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
