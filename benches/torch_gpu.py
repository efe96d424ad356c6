"""The peer of examples/bench_gpu.rs: PyTorch eager fp32 on the same rows, same machine.

Random MiniLM-shaped BERT and GPT-2-small-shaped models (speed does not depend on the values), the
fixtures' BERT and GPT-2 tokenizers, movie reviews from tests/data; each row does the work the
burn row does:
- embed 1x128: the first 20 reviews joined, truncated at 128 tokens, mean pooling + L2 norm, read
  back to the host;
- embed 32x32: 32 reviews of at least 32 tokens, truncated at 32;
- 256 reviews: the first 256, truncated at 128, tokenization included, in one call (one batch:
  PyTorch's best case; burn's row runs batches of 32, sorted by length);
- GPT-2: prefill 64 tokens -> first greedy token (read back), then 32 greedy tokens with the KV
  cache, one read per token; the same for SmolLM2-135M's and Qwen2.5-0.5B's shapes (fp32, as
  burn's rows compute; bench_gpu's `llama` rows);
- full fine-tuning: 512 reviews from the training split, 1 epoch, batch 8 and 32, dynamic padding
  (<= 128 tokens), AdamW lr 5e-5, gradient clipping at 1.0, the loss read every 10 steps (as
  Trainer's logging_steps).
Usage: python3 benches/torch_gpu.py [cuda|cpu] [embed] [decoders] [train]   (from the repository
root; no section named: all three)
"""
import csv
import random
import statistics
import sys
import time

import torch
from transformers import (BertConfig, BertForSequenceClassification, BertModel, GPT2Config,
                          GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast,
                          Qwen2Config, Qwen2ForCausalLM)

dev = sys.argv[1] if len(sys.argv) > 1 else ("cuda" if torch.cuda.is_available() else "cpu")
sections = sys.argv[2:] or ["embed", "decoders", "train"]
torch.manual_seed(0)


def sync():
    if dev == "cuda":
        torch.cuda.synchronize()


def med(f, warm=3, runs=20):
    for _ in range(warm):
        f()
    ts = []
    for _ in range(runs):
        sync()
        t = time.perf_counter()
        f()
        sync()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def row(name, figure):
    print(f"| {name:<52} | {figure:>24} |")


tok = PreTrainedTokenizerFast(tokenizer_file="tests/fixtures/models/tiny-bert/tokenizer.json",
                              pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                              unk_token="[UNK]", mask_token="[MASK]")
rows = list(csv.DictReader(open("tests/data/movie_reviews.csv", encoding="utf-8")))
texts = [r["text"] for r in rows]
labels = sorted(set(r["label"] for r in rows))
y_all = [labels.index(r["label"]) for r in rows]
name = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
print(f"torch {torch.__version__} on {dev} ({name}), eager fp32, {torch.get_num_threads()} CPU threads")
print(f"| {'workload':<52} | {'figure':>24} |")

cfg = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                 intermediate_size=1536, max_position_embeddings=512, attn_implementation="eager")
m = BertModel(cfg).to(dev).eval()


def embed(batch, max_length, m):
    enc = tok(batch, padding=True, truncation=True, max_length=max_length,
              return_tensors="pt").to(dev)
    with torch.no_grad():
        h = m(**enc).last_hidden_state
        mask = enc["attention_mask"][..., None]
        x = (h.float() * mask).sum(1) / mask.sum(1)
        return torch.nn.functional.normalize(x, dim=-1).cpu()


if "embed" in sections:
    # In half precision on a GPU (torch.float16, as the engine's default there) and in f32, as
    # bench_gpu prints them.
    for dtype, label in [(torch.float16, "f16"), (torch.float32, "f32")] if dev == "cuda" else [(torch.float32, "f32")]:
        mm = BertModel(cfg).to(dev, dtype).eval()
        long = " ".join(texts[:20])
        row(f"MiniLM embed 1x128 ({label})", f"{med(lambda: embed([long], 128, mm)) * 1e3:.2f} ms")
        t32 = [t for t in texts if len(tok(t)["input_ids"]) >= 32][:32]
        row(f"MiniLM embed 32x32 ({label})", f"{med(lambda: embed(t32, 32, mm)) * 1e3:.2f} ms")
        s = med(lambda: embed(texts[:256], 128, mm), 1, 5)
        row(f"256 reviews (<=128 tokens, tokenization incl.), one call ({label})",
            f"{s * 1e3:.1f} ms = {256 / s:.0f} /s")

def decoder(name, g):
    """The prefill and decode rows of a causal LM `g` (as bench_gpu's `decoder`)."""
    prompt = torch.tensor([[100 + i * 37 for i in range(64)]], device=dev)
    ttft, rates = [], []
    for run in range(4):
        with torch.no_grad():
            sync()
            t = time.perf_counter()
            out = g(prompt, use_cache=True)
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            nxt.item()
            f = time.perf_counter() - t
            pkv = out.past_key_values
            t = time.perf_counter()
            for _ in range(32):
                out = g(nxt, past_key_values=pkv, use_cache=True)
                pkv = out.past_key_values
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)
                nxt.item()
            d = time.perf_counter() - t
        if run:
            ttft.append(f)
            rates.append(32 / d)
    row(f"{name}: prefill 64 -> first token", f"{statistics.median(ttft) * 1e3:.1f} ms")
    row(f"{name}: decode with KV cache", f"{statistics.median(rates):.1f} tok/s")


if "decoders" in sections:
    # Each in half precision on a GPU (torch.float16, as the engine's default there) and in f32.
    dtypes = [(torch.float16, "f16"), (torch.float32, "f32")] if dev == "cuda" else [(torch.float32, "f32")]
    # The Hub's config.json of each (examples/common/random_models.rs has the same shapes).
    models = [
        ("GPT-2 small", lambda: GPT2LMHeadModel(GPT2Config())),
        ("SmolLM2-135M", lambda: LlamaForCausalLM(LlamaConfig(
            vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
            num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
            rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True))),
        ("Qwen2.5-0.5B", lambda: Qwen2ForCausalLM(Qwen2Config(
            vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
            num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
            rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True))),
    ]
    for name, make in models:
        for dtype, label in dtypes:
            decoder(f"{name} ({label})", make().to(dev, dtype).eval())

train_idx = [i for i in range(len(texts)) if i % 5 != 0]
random.seed(42)
idx = random.sample(train_idx, 512)
for bs in ((8, 32) if "train" in sections else ()):
    c = BertForSequenceClassification(BertConfig(**{**cfg.to_dict(), "num_labels": len(labels)}))
    c = c.to(dev).train()
    opt = torch.optim.AdamW(c.parameters(), lr=5e-5)

    def epoch():
        n, losses = 0, []
        for step, i in enumerate(range(0, len(idx), bs), 1):
            bi = idx[i:i + bs]
            enc = tok([texts[j] for j in bi], padding=True, truncation=True, max_length=128,
                      return_tensors="pt").to(dev)
            loss = c(**enc, labels=torch.tensor([y_all[j] for j in bi], device=dev)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(c.parameters(), 1.0)
            opt.step()
            opt.zero_grad()
            losses.append(loss.detach())
            if step % 10 == 0:
                torch.stack(losses).sum().item()
                losses = []
            n += len(bi)
        loss.item()
        return n

    epoch()
    sync()
    t = time.perf_counter()
    n = epoch()
    sync()
    s = time.perf_counter() - t
    row(f"full fine-tuning, 512 reviews, batch {bs}, <=128 tokens", f"{n / s:.1f} ex/s")
