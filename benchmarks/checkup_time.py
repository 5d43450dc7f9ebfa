"""Timing of `gd.checkup`: a 20-layer MLP, a GPT-2-small-sized pre-norm nn.TransformerEncoder (124 M params), and a
96-layer BERT-base (transformers `BertConfig(num_hidden_layers=96)`, 682 M params, random init, no download).

    $ python benchmarks/checkup_time.py

Prints each timing next to a plain forward+backward of the same batch, and the findings; the figures are recorded in
docs/checkup.md ("Cost") and BENCHMARKS.md.
"""
import time

import torch
import transformers
from torch import nn

from gradient_doctor.diagnose import checkup


def timed(model, x, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); diag = checkup(model, x); times.append(time.perf_counter() - t)
    return times, diag

torch.manual_seed(0)
mlp = nn.Sequential(*[m for _ in range(20) for m in (nn.Linear(256, 256), nn.ReLU())], nn.Linear(256, 10))
t, d = timed(mlp, torch.randn(64, 256), 5)
print(f"20-layer MLP (width 256, batch 64): {['%.3f' % v for v in t]} s; findings {[f.kind for f in d.findings]}")

class GPT2Sized(nn.Module):
    def __init__(self, vocab=50257, d=768, layers=12, heads=12, ff=3072, ctx=1024):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
        block = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.1, activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.wte.weight  # tied, as in GPT-2
    def forward(self, ids):
        pos = torch.arange(ids.shape[1], device=ids.device)
        mask = nn.Transformer.generate_square_subsequent_mask(ids.shape[1])
        return self.head(self.ln_f(self.blocks(self.wte(ids) + self.wpe(pos), mask=mask, is_causal=True)))

def gpt2_init(module):  # as Hugging Face's GPT-2: N(0, 0.02) weights, zero biases, unit LayerNorm
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.MultiheadAttention):
        nn.init.normal_(module.in_proj_weight, std=0.02); nn.init.zeros_(module.in_proj_bias)

model = GPT2Sized()
print(f"params: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M; threads {torch.get_num_threads()}")
ids = torch.randint(0, 50257, (2, 128))
for _ in range(3):
    t0 = time.perf_counter(); model(ids).sum().backward(); model.zero_grad(set_to_none=True)
    print(f"plain forward+backward: {time.perf_counter() - t0:.2f} s")
t, d = timed(model, ids, 2)
print(f"PyTorch default init (tied N(0,1) embedding/head): {['%.2f' % v for v in t]} s; "
      f"findings {[(f.kind, f.severity, f.summary) for f in d.findings]}")
model.apply(gpt2_init)
t, d = timed(model, ids, 3)
print(f"GPT-2-small-sized encoder (batch 2, seq 128): {['%.2f' % v for v in t]} s; healthy {d.healthy}; "
      f"findings {[(f.kind, f.severity) for f in d.findings]}; r={d.measurement.budget.end_to_end:.3g}")

torch.manual_seed(0)
bert = transformers.BertForMaskedLM(transformers.BertConfig(vocab_size=512, num_hidden_layers=96))
ids = torch.randint(0, 512, (8, 32))
batch = {"input_ids": ids, "labels": ids}  # masked-LM loss on 8 x 32 tokens, as benchmarks/real's BERT controls
for _ in range(2):
    t0 = time.perf_counter(); bert(**batch).loss.backward(); bert.zero_grad(set_to_none=True)
    print(f"96-layer BERT-base plain forward+backward: {time.perf_counter() - t0:.2f} s")
t, d = timed(bert, batch, 2)
print(f"96-layer BERT-base ({sum(p.numel() for p in bert.parameters()) / 1e6:.0f} M params, batch 8 x 32 tokens): "
      f"{['%.2f' % v for v in t]} s; healthy {d.healthy}; findings {[(f.kind, f.severity) for f in d.findings]}")
