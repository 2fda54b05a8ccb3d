#!/usr/bin/env python3
"""Writes the Hugging Face parity fixtures for model/tests/reference.rs.

A deterministic tiny random GPT-2 (transformers' own GPT2LMHeadModel) saved in Hugging Face format
(config.json + model.safetensors), plus its logits for a few prompts and its greedy continuations.

Weights are drawn with a large spread (not GPT-2's 0.02) so logits differ by whole units between tokens: a 1e-4
agreement is then a real check, and a wrongly transposed square matrix (attn.c_proj) cannot hide.
The vocabulary is 1000 tokens so the fixtures stay small (< 2 MB); the prompt ids are real GPT-2 ids below 1000.

Run through scripts/gen-reference.sh, which makes the venv (torch CPU + transformers from PyPI).
`gen_reference.py --families DIR` writes the tiny Llama, Qwen2 and GPTBigCode parity fixtures (scripts/gen_families.py).
`gen_reference.py --hub DIR` writes the tiny Hub repositories the `pull` tests serve instead (numpy, safetensors
and tokenizers only; scripts/hub_fixtures.py). `gen_reference.py --gpt2-small DIR` writes a GPT-2-small-shaped
random repository there (for measurements, never committed).
"""
import json
import os
import sys

if len(sys.argv) > 2 and sys.argv[1] == "--gpt2-small":
    # GPT-2 small's shapes, random weights, in the Hub's layout (scripts/browser-gpt2-small.sh); numpy only.
    import hub_fixtures
    hub_fixtures.gpt2_small(sys.argv[2])
    sys.exit(0)

if len(sys.argv) > 2 and sys.argv[1] == "--families":
    # Tiny Llama, Qwen2 and GPTBigCode repositories and their transformers outputs (scripts/gen_families.py).
    import gen_families
    gen_families.main(sys.argv[2])
    sys.exit(0)

if len(sys.argv) > 1 and sys.argv[1] == "--hub":
    # Hub fixtures need no torch: see hub_fixtures() at the end.
    import hub_fixtures
    hub_fixtures.main(sys.argv[2] if len(sys.argv) > 2 else "cli/tests/fixtures/hub")
    sys.exit(0)

import torch
from transformers import GPT2Config, GPT2LMHeadModel

out = sys.argv[1] if len(sys.argv) > 1 else "model/tests/fixtures/hf-tiny-gpt2"
os.makedirs(out, exist_ok=True)
torch.manual_seed(1234)

config = GPT2Config(
    vocab_size=1000, n_positions=64, n_embd=32, n_layer=2, n_head=4,
    activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    # No special tokens: greedy decoding must run its full length with nothing masked (min_new_tokens would
    # mask the EOS logit and change the argmax).
    bos_token_id=None, eos_token_id=None, pad_token_id=None,
)
model = GPT2LMHeadModel(config).eval()
with torch.no_grad():
    for name, p in model.named_parameters():
        if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
            p.copy_(1.0 + 0.2 * torch.randn_like(p))
        elif p.dim() == 1:
            p.copy_(0.1 * torch.randn_like(p))
        else:
            p.copy_(0.3 * torch.randn_like(p))
model.save_pretrained(out, safe_serialization=True)

prompts = [
    [429, 751, 7, 64, 11, 275, 259, 198],
    [220, 220, 220, 220, 441, 257, 343, 275, 198, 198, 429, 13],
    [31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53],
    [999],
]
cases = []
with torch.no_grad():
    for ids in prompts:
        x = torch.tensor([ids])
        logits = model(x).logits[0]
        greedy = model.generate(x, do_sample=False, max_new_tokens=20,
                                attention_mask=torch.ones_like(x))[0, len(ids):]
        assert len(greedy) == 20
        cases.append({
            "ids": ids,
            "logits": [[round(v, 6) for v in row] for row in logits.tolist()],
            "greedy": greedy.tolist(),
        })
with open(os.path.join(out, "reference.json"), "w") as f:
    json.dump({"torch": torch.__version__, "cases": cases}, f)
print("wrote", out)
