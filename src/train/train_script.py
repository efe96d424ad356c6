#!/usr/bin/env python3
"""Fine-tunes a Hugging Face encoder on a labelled CSV as Tunelab did in the browser, with
transformers' Trainer: the same base model, the same data reading, the same stratified split
(Tunelab's SplitMix64 generator, ported here, with the same seed), the same training arguments
and the same metrics. Written by Tunelab's "Export as a training script".

    pip install -r requirements.txt
    python train.py                        # one GPU, or the CPU
    python train.py --gpus 4               # several GPUs on this machine (accelerate launch)
    python train.py --data bigger.csv      # the same run on another file of the same layout

Use it when the data or the model is too big for a browser tab. Writes to --output-dir (default
./output): the trained model folder (`model/`, with the tokenizer; after LoRA the PEFT adapter, or
with --merge the merged model), `metrics.json` (each epoch's evaluation) and `split.json` (the
training and test parts as positions among the file's labelled rows).
"""
import argparse
import csv
import inspect
import io
import json
import math
import os
import shutil
import subprocess
import sys

CONFIG = json.loads(TUNELAB_CONFIG)

MASK = (1 << 64) - 1


class SplitMix64:
    """Tunelab's random generator (src/rng.rs), bit for bit."""

    def __init__(self, seed):
        self.state = seed & MASK

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):
        return (self.next_u64() * n) >> 64

    def shuffle(self, items):
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]


def stratified_split(labels, num_classes, test_fraction, seed):
    """Tunelab's split (src/data/split.rs): ceil(fraction * n) test rows allotted to classes in
    proportion (largest remainders first), at least one per class in each part."""
    n = len(labels)
    by_class = [[] for _ in range(num_classes)]
    for i, label in enumerate(labels):
        by_class[label].append(i)
    for c, rows in enumerate(by_class):
        if len(rows) < 2:
            sys.exit(f"class {c} has {len(rows)} example(s): a stratified split needs at least 2")
    present = sum(1 for rows in by_class if rows)
    n_test = min(max(math.ceil(test_fraction * n), present), n - present)
    exact = [len(rows) * n_test / n for rows in by_class]
    take = [min(max(math.floor(e), 1), len(rows) - 1) for e, rows in zip(exact, by_class)]
    order = sorted(range(num_classes), key=lambda c: (-(exact[c] - math.floor(exact[c])), c))
    total = sum(take)
    for k in range(num_classes * 4):
        if total >= n_test:
            break
        c = order[k % num_classes]
        if take[c] + 1 < len(by_class[c]):
            take[c] += 1
            total += 1
    rng = SplitMix64(seed)
    train, test = [], []
    for c, rows in enumerate(by_class):
        rows = list(rows)
        rng.shuffle(rows)
        test.extend(rows[: take[c]])
        train.extend(rows[take[c]:])
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def read_rows(path, data):
    """The file's labelled rows as Tunelab reads them: UTF-8 (a BOM dropped), the detected
    delimiter and header, blank lines and rows of another width skipped, text and label trimmed,
    rows with an empty text or label skipped. Returns (row numbers, texts, labels)."""
    with open(path, "rb") as f:
        raw = f.read()
    text = raw.decode("utf-8-sig")
    records = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=data["delimiter"])
               if not (len(r) == 1 and not r[0].strip()) and r]
    if data["has_header"]:
        records = records[1:]
    width = data["columns"]
    rows, texts, labels = [], [], []
    for number, record in enumerate(records):
        if len(record) != width:
            continue
        t = record[data["text_column"]].strip()
        label = record[data["label_column"]].strip()
        if t and label:
            rows.append(number)
            texts.append(t)
            labels.append(label)
    return rows, texts, labels


def order_labels(raw):
    """Integer labels sort numerically, others alphabetically (as sorted(set(y)))."""
    names = sorted(set(raw))
    try:
        return sorted(names, key=int)
    except ValueError:
        return names


def relaunch_on_gpus(n):
    """Runs this script again under `accelerate launch` on n GPUs, unless already under it."""
    if n <= 1 or "LOCAL_RANK" in os.environ:
        return
    argv = [a for a in sys.argv[1:]]
    cmd = ["accelerate", "launch", "--multi_gpu", "--num_processes", str(n), sys.argv[0], *argv]
    print("running:", " ".join(cmd), flush=True)
    sys.exit(subprocess.call(cmd))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=CONFIG["data"]["file"], help="the labelled CSV/TSV")
    ap.add_argument("--test", default=CONFIG["data"]["test_file"], help="a separate test file")
    ap.add_argument("--model", default=CONFIG["base_model"], help="the base model (Hub id or folder)")
    ap.add_argument("--output-dir", default="output")
    ap.add_argument("--gpus", type=int, default=1, help="GPUs on this machine (accelerate launch)")
    ap.add_argument("--epochs", type=float, default=None, help="override the number of epochs")
    ap.add_argument("--merge", action="store_true", help="LoRA: save the merged model, not the adapter")
    a = ap.parse_args()
    relaunch_on_gpus(a.gpus)

    import numpy as np
    import torch
    from transformers import (AutoConfig, AutoModelForSequenceClassification, AutoTokenizer,
                              DataCollatorWithPadding, Trainer, TrainingArguments)

    args, data = CONFIG["args"], CONFIG["data"]
    _, texts, raw_labels = read_rows(a.data, data)
    names = order_labels(raw_labels)
    index = {n: i for i, n in enumerate(names)}
    labels = [index[label] for label in raw_labels]
    if a.test:
        _, test_texts, test_raw = read_rows(a.test, CONFIG["test_data"] or data)
        unknown = sorted(set(test_raw) - set(names))
        if unknown:
            sys.exit(f"the test file has labels the training data lacks: {unknown}")
        train_idx, test_idx = list(range(len(texts))), []
        test_set = (test_texts, [index[label] for label in test_raw])
    else:
        train_idx, test_idx = stratified_split(labels, len(names), data["test_fraction"], data["split_seed"])
        test_set = ([texts[i] for i in test_idx], [labels[i] for i in test_idx])
    train_set = ([texts[i] for i in train_idx], [labels[i] for i in train_idx])
    print(f"{len(train_set[0])} training and {len(test_set[0])} test rows; labels {names}", flush=True)

    tokenizer = AutoTokenizer.from_pretrained(a.model)
    config = AutoConfig.from_pretrained(a.model, num_labels=len(names),
                                        id2label=dict(enumerate(names)), label2id=index)
    if not args["dropout"]:
        for key in ["hidden_dropout_prob", "attention_probs_dropout_prob", "dropout", "attention_dropout",
                    "seq_classif_dropout", "classifier_dropout", "embedding_dropout", "mlp_dropout"]:
            if getattr(config, key, None) is not None:
                setattr(config, key, 0.0)
    model = AutoModelForSequenceClassification.from_pretrained(a.model, config=config,
                                                               ignore_mismatched_sizes=True)
    mode = args["mode"]
    if mode == "Head":
        # The encoder frozen: only the classification head trains.
        for p in model.base_model.parameters():
            p.requires_grad_(False)
    elif mode == "Lora":
        from peft import LoraConfig, TaskType, get_peft_model
        lora = CONFIG["lora"]
        model = get_peft_model(model, LoraConfig(
            task_type=TaskType.SEQ_CLS, r=lora["r"], lora_alpha=lora["alpha"],
            lora_dropout=lora["dropout"], target_modules=lora["target_modules"],
            modules_to_save=lora["modules_to_save"], use_rslora=lora["rslora"]))
        model.print_trainable_parameters()

    class Rows(torch.utils.data.Dataset):
        def __init__(self, part):
            self.enc = tokenizer(part[0], truncation=True, max_length=args["max_length"])
            self.labels = part[1]

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            item = {k: v[i] for k, v in self.enc.items()}
            item["labels"] = self.labels[i]
            return item

    # Binary metrics of the positive class with two labels (one named like "positive", else the
    # second), macro averages otherwise.
    positive = None
    if len(names) == 2:
        named = [i for i, n in enumerate(names) if n.lower() in ("positive", "pos", "1", "true", "yes")]
        positive = named[0] if named else 1

    def compute_metrics(pred):
        """Tunelab's metrics: accuracy; precision, recall and F1 of the positive class with two
        labels (binary), their macro average otherwise; the confusion matrix."""
        logits, truth = pred
        predicted = np.argmax(logits, axis=-1)
        k = len(names)
        confusion = np.zeros((k, k), dtype=np.int64)
        for t, p in zip(truth, predicted):
            confusion[t, p] += 1
        per = []
        for c in range(k):
            tp = confusion[c, c]
            fp = confusion[:, c].sum() - tp
            fn = confusion[c, :].sum() - tp
            precision = tp / (tp + fp) if tp + fp else 0.0
            recall = tp / (tp + fn) if tp + fn else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            per.append((precision, recall, f1))
        if positive is not None:
            precision, recall, f1 = per[positive]
        else:
            precision, recall, f1 = (float(np.mean([m[i] for m in per])) for i in range(3))
        return {"accuracy": float((predicted == truth).mean()), "precision": float(precision),
                "recall": float(recall), "f1": float(f1), "confusion": confusion.tolist()}

    epochs = a.epochs if a.epochs is not None else args["num_train_epochs"]
    gpus = max(1, int(os.environ.get("WORLD_SIZE", "1")))
    # transformers 5 takes the warm-up share as a float warmup_steps; 4.x as warmup_ratio.
    if "warmup_ratio" in inspect.signature(TrainingArguments.__init__).parameters:
        warmup = {"warmup_ratio": args["warmup_ratio"]}
    else:
        warmup = {"warmup_steps": float(args["warmup_ratio"])}
    training = TrainingArguments(
        output_dir=os.path.join(a.output_dir, "checkpoints"),
        num_train_epochs=epochs,
        # Tunelab's batch is the whole step's: shared out over the GPUs.
        per_device_train_batch_size=max(1, args["per_device_train_batch_size"] // gpus),
        per_device_eval_batch_size=args["per_device_eval_batch_size"],
        learning_rate=args["learning_rate"],
        weight_decay=args["weight_decay"],
        **warmup,
        adam_beta1=args["adam_beta1"],
        adam_beta2=args["adam_beta2"],
        adam_epsilon=args["adam_epsilon"],
        max_grad_norm=args["max_grad_norm"],
        lr_scheduler_type="linear",
        logging_steps=args["logging_steps"],
        eval_strategy="epoch",
        save_strategy="no",
        seed=args["seed"],
        report_to="none",
    )
    trainer = Trainer(model=model, args=training, train_dataset=Rows(train_set),
                      eval_dataset=Rows(test_set) if test_set[0] else None,
                      data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=compute_metrics)
    trainer.train()
    if trainer.is_world_process_zero():
        os.makedirs(a.output_dir, exist_ok=True)
        final = os.path.join(a.output_dir, "model")
        if mode == "Lora" and a.merge:
            model = model.merge_and_unload()
        shutil.rmtree(final, ignore_errors=True)
        model.save_pretrained(final)
        tokenizer.save_pretrained(final)
        if mode == "Lora" and not a.merge:
            # A PEFT folder has no place for the label names: Tunelab reads them from here.
            with open(os.path.join(final, "labels.json"), "w") as f:
                json.dump({"id2label": {str(i): n for i, n in enumerate(names)}, "label2id": index}, f, indent=1)
        evals = [{k[len("eval_"):] if k.startswith("eval_") else k: v for k, v in e.items()}
                 for e in trainer.state.log_history if "eval_loss" in e]
        with open(os.path.join(a.output_dir, "metrics.json"), "w") as f:
            json.dump({"labels": names, "average": "binary" if positive is not None else "macro",
                       "epochs": evals}, f, indent=1)
        with open(os.path.join(a.output_dir, "split.json"), "w") as f:
            json.dump({"train": train_idx, "test": test_idx}, f)
        print(f"saved {final}; metrics in {a.output_dir}/metrics.json", flush=True)


if __name__ == "__main__":
    main()
