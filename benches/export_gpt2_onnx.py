"""A GPT-2 small-shaped causal LM (random weights, seed 0: speed does not depend on them) for
transformers.js, as the Hub's ONNX exports of decoders are laid out: `onnx/model.onnx` taking
`input_ids`, `attention_mask`, `position_ids` and `past_key_values.{i}.key/value` and giving
`logits` and `present.{i}.key/value`, with `config.json` beside it. Writes `greedy.json` too:
the prompt `benches/transformersjs_gpt2.mjs` feeds and PyTorch's greedy continuation of it, which
transformers.js must reproduce before its speed counts.
Usage: python benches/export_gpt2_onnx.py <out dir>
"""
import json, os, sys
import torch
from transformers import GPT2Config, GPT2LMHeadModel, DynamicCache

out = sys.argv[1]
os.makedirs(os.path.join(out, "onnx"), exist_ok=True)
torch.manual_seed(0)
config = GPT2Config(attn_implementation="eager")  # GPT-2 small: 12 layers, 768 wide, 12 heads
model = GPT2LMHeadModel(config).eval()
config.save_pretrained(out)
layers, heads, dh = config.n_layer, config.n_head, config.n_embd // config.n_head


# The benchmark's prompt (Tunelab's too: examples/common/decode_bench.rs) and PyTorch's greedy
# continuation: the most likely next token, 16 times (a loop over the model's forward, not
# `generate`, whose defaults for a config made from scratch are not plain greedy decoding),
# before the export (tracing leaves the model computing otherwise).
prompt = [100 + i * 37 for i in range(64)]
ids = list(prompt)
with torch.no_grad():
    for _ in range(16):
        ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
greedy = {"prompt": prompt, "greedy": ids[64:]}
print("ok")


class WithPast(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask, position_ids, *past):
        cache = DynamicCache()
        for i in range(layers):
            cache.update(past[2 * i], past[2 * i + 1], i)
        o = self.m(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                   past_key_values=cache, use_cache=True)
        present = []
        for layer in o.past_key_values.layers:
            present += [layer.keys, layer.values]
        return (o.logits, *present)


b, t, p = 1, 3, 5
past = []
for i in range(layers):
    past += [torch.randn(b, heads, p, dh), torch.randn(b, heads, p, dh)]
args = (torch.ones(b, t, dtype=torch.long), torch.ones(b, p + t, dtype=torch.long),
        torch.arange(p, p + t).unsqueeze(0), *past)
past_names = [f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
present_names = [f"present.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "total"},
        "position_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}}
axes.update({n: {0: "batch", 2: "past"} for n in past_names})
axes.update({n: {0: "batch", 2: "total"} for n in present_names})
with torch.no_grad():
    torch.onnx.export(WithPast(model), args, os.path.join(out, "onnx", "model.onnx"),
                      input_names=["input_ids", "attention_mask", "position_ids", *past_names],
                      output_names=["logits", *present_names], dynamic_axes=axes,
                      opset_version=17, dynamo=False)
json.dump(greedy, open(os.path.join(out, "greedy.json"), "w"))
print("ok")
