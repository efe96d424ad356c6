"""Exports a BERT-family checkpoint's encoder (last_hidden_state) to ONNX for transformers.js, so
that benches/transformersjs.mjs runs the same weights Tunelab runs.
Usage: python benches/export_onnx.py <HF model dir> <out model.onnx>
"""
import sys, torch
from transformers import AutoModel
src, dst = sys.argv[1], sys.argv[2]
m = AutoModel.from_pretrained(src).eval()
ids = torch.ones(2, 16, dtype=torch.long); mask = torch.ones(2, 16, dtype=torch.long); tt = torch.zeros(2, 16, dtype=torch.long)
class W(torch.nn.Module):
    def __init__(s, m): super().__init__(); s.m = m
    def forward(s, input_ids, attention_mask, token_type_ids):
        return s.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
torch.onnx.export(W(m), (ids, mask, tt), dst, input_names=["input_ids", "attention_mask", "token_type_ids"],
    output_names=["last_hidden_state"], dynamic_axes={n: {0: "batch", 1: "seq"} for n in ["input_ids", "attention_mask", "token_type_ids", "last_hidden_state"]},
    opset_version=17, dynamo=False)
print("ok")
