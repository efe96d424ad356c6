"""A real-size classifier for the cold-start benchmark: all-MiniLM-L6-v2's encoder with a fresh
two-label head (seeded; speed does not depend on its values) saved as a transformers checkpoint for
Tunelab, and its logits exported to ONNX (onnx/model.onnx) for transformers.js.
Usage: python benches/make_classifier.py <all-MiniLM-L6-v2 folder> <out folder>
"""
import shutil
import sys
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
torch.manual_seed(0)
m = AutoModelForSequenceClassification.from_pretrained(
    src, num_labels=2, id2label={0: "NEGATIVE", 1: "POSITIVE"},
    label2id={"NEGATIVE": 0, "POSITIVE": 1}).eval()
dst.mkdir(parents=True, exist_ok=True)
m.save_pretrained(dst, safe_serialization=True)
for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]:
    if (src / f).exists():
        shutil.copy(src / f, dst / f)
(dst / "onnx").mkdir(exist_ok=True)
ids = torch.ones(2, 16, dtype=torch.long)
mask = torch.ones(2, 16, dtype=torch.long)
tt = torch.zeros(2, 16, dtype=torch.long)


class W(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.m(input_ids=input_ids, attention_mask=attention_mask,
                      token_type_ids=token_type_ids).logits


torch.onnx.export(W(m), (ids, mask, tt), dst / "onnx" / "model.onnx",
                  input_names=["input_ids", "attention_mask", "token_type_ids"],
                  output_names=["logits"],
                  dynamic_axes={"input_ids": {0: "batch", 1: "seq"},
                                "attention_mask": {0: "batch", 1: "seq"},
                                "token_type_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch"}},
                  opset_version=17, dynamo=False)
print("ok")
