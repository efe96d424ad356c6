"""The peer of `examples/bench_finetune.rs full` for speed: Hugging Face's Trainer fine-tuning the
real all-MiniLM-L6-v2 (every weight) on movie reviews on the CPU, with the settings Tunelab's full
mode uses: batch 8, max length 128 with dynamic padding (DataCollatorWithPadding), AdamW lr 5e-5,
linear schedule, gradient clipping at 1.0, no evaluation or checkpoint during the timed epoch.
Prints the machine, torch's thread count and Trainer's own train_samples_per_second.

With a fourth argument `lora`, the peer of `bench_finetune lora`: PEFT's LoRA (r 8, alpha 16,
dropout 0.1 on query and value, the classifier in full) at lr 5e-4, through the same Trainer.

Usage (from the repository root; scripts/bench.sh trainer and lora run it in the project's venv):
  python benches/trainer_cpu.py <all-MiniLM-L6-v2 folder> [examples, default 400] [epochs, default 1] [lora]
"""
import csv
import os
import platform
import random
import sys

import torch
from transformers import (AutoModelForSequenceClassification, AutoTokenizer,
                          DataCollatorWithPadding, Trainer, TrainingArguments)

model_dir = sys.argv[1]
examples = int(sys.argv[2]) if len(sys.argv) > 2 else 400
epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 1
lora = len(sys.argv) > 4 and sys.argv[4] == "lora"

with open("tests/data/movie_reviews.csv", newline="", encoding="utf-8") as f:
    rows = list(csv.reader(f))[1:]
labels = sorted({r[1] for r in rows})
random.seed(42)
rows = random.sample(rows, examples)

tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=len(labels))
if lora:
    from peft import LoraConfig, TaskType, get_peft_model
    model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=8, lora_alpha=16,
                                             lora_dropout=0.1, target_modules=["query", "value"]))


class Reviews(torch.utils.data.Dataset):
    def __len__(self):
        return len(rows)

    def __getitem__(self, i):
        enc = tok(rows[i][0], truncation=True, max_length=128)
        enc["labels"] = labels.index(rows[i][1])
        return enc


args = TrainingArguments(
    output_dir="/tmp/tunelab-trainer-bench", per_device_train_batch_size=8, learning_rate=5e-4 if lora else 5e-5,
    num_train_epochs=epochs, max_grad_norm=1.0, eval_strategy="no", save_strategy="no",
    logging_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=0, seed=42)
trainer = Trainer(model=model, args=args, train_dataset=Reviews(),
                  data_collator=DataCollatorWithPadding(tok))
out = trainer.train()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
           platform.processor())
print(f"machine: {cpu}, {os.cpu_count()} threads available; torch {torch.__version__}, "
      f"{torch.get_num_threads()} threads")
print(f"HF Trainer {'LoRA' if lora else 'full'} fine-tuning, all-MiniLM-L6-v2, {examples} reviews, {epochs} epoch(s), "
      f"batch 8, <= 128 tokens: {out.metrics['train_samples_per_second']:.1f} training examples/s "
      f"({out.metrics['train_runtime']:.1f} s)")
