"""Tiny GPT-2 repositories in the Hugging Face Hub's layout, for the `hnet-gpt pull` tests (cli/tests/hub.rs).

Written by `scripts/gen_reference.py --hub DIR` (needs numpy, safetensors and tokenizers from PyPI; no torch):

- `tiny-gpt2/`: GPT-2's vocabulary (50257) and tokenizer, 2 layers of width 8, f16 weights under the names of the
  original `gpt2` checkpoint (no `transformer.` prefix). Its `tokenizer.json` is GPT-2's: the test server serves
  the repository's `public/tokenizer.json` for it rather than keeping a second copy.
- `tiny-codegpt/`: its own byte-level BPE (512 tokens, trained here on Python source with `<|endoftext|>`), 2 layers
  of width 16, f32 weights under `transformer.` names, saved as two shards with `model.safetensors.index.json`,
  as transformers' `save_pretrained(max_shard_size=…)` writes them.

Weights are random with a large spread (as in the parity fixtures) so that logits differ by whole units and greedy
output is a real check.

`gpt2_small(DIR)` (`scripts/gen_reference.py --gpt2-small DIR`) writes `DIR/gpt2-small-random/`: GPT-2 small's exact
shapes (124M parameters, f32, 498 MB: the Hub's file also holds 50 MB of attention-mask buffers) with random weights at GPT-2's initialisation scale, for measuring what the
real `gpt2` costs (download, conversion, memory, speed) where the Hub cannot be reached. Not a test fixture: it is
written on demand by scripts/browser-gpt2-small.sh and never committed.
"""
import json
import os

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

TRAIN_TEXT = '''
def fibonacci(n):
    """Return the n-th Fibonacci number."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


class Stack:
    def __init__(self):
        self.items = []

    def push(self, item):
        self.items.append(item)

    def pop(self):
        if not self.items:
            raise IndexError("pop from an empty stack")
        return self.items.pop()


def is_prime(n):
    if n < 2:
        return False
    for d in range(2, int(n ** 0.5) + 1):
        if n % d == 0:
            return False
    return True
'''


def gpt2_config(vocab, n_positions, n_embd, n_layer, n_head):
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "activation_function": "gelu_new",
        "vocab_size": vocab, "n_positions": n_positions, "n_ctx": n_positions, "n_embd": n_embd, "n_layer": n_layer,
        "n_head": n_head, "n_inner": None, "layer_norm_epsilon": 1e-5, "resid_pdrop": 0.0, "embd_pdrop": 0.0,
        "attn_pdrop": 0.0, "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False, "tie_word_embeddings": True, "bos_token_id": vocab - 1,
        "eos_token_id": vocab - 1, "transformers_version": "4.46.0",
    }


def gpt2_weights(rng, vocab, n_positions, d, n_layer, prefix=""):
    def w(*shape, scale=0.3):
        return (scale * rng.standard_normal(shape)).astype(np.float32)
    t = {f"{prefix}wte.weight": w(vocab, d, scale=1.0), f"{prefix}wpe.weight": w(n_positions, d, scale=0.1)}
    for i in range(n_layer):
        h = f"{prefix}h.{i}."
        t[h + "ln_1.weight"] = (1.0 + w(d, scale=0.2))
        t[h + "ln_1.bias"] = w(d, scale=0.1)
        t[h + "attn.c_attn.weight"] = w(d, 3 * d)
        t[h + "attn.c_attn.bias"] = w(3 * d, scale=0.1)
        t[h + "attn.c_proj.weight"] = w(d, d)
        t[h + "attn.c_proj.bias"] = w(d, scale=0.1)
        t[h + "ln_2.weight"] = (1.0 + w(d, scale=0.2))
        t[h + "ln_2.bias"] = w(d, scale=0.1)
        t[h + "mlp.c_fc.weight"] = w(d, 4 * d)
        t[h + "mlp.c_fc.bias"] = w(4 * d, scale=0.1)
        t[h + "mlp.c_proj.weight"] = w(4 * d, d)
        t[h + "mlp.c_proj.bias"] = w(d, scale=0.1)
    t[f"{prefix}ln_f.weight"] = (1.0 + w(d, scale=0.2))
    t[f"{prefix}ln_f.bias"] = w(d, scale=0.1)
    return t


def gpt2_small(out):
    """GPT-2 small's shapes (`gpt2` on the Hub: 12 layers, width 768, 12 heads, 1024 positions, 50257 tokens)."""
    rng = np.random.default_rng(124)
    repo = os.path.join(out, "gpt2-small-random")
    os.makedirs(repo, exist_ok=True)
    config = gpt2_config(50257, 1024, 768, 12, 12)
    write_json(os.path.join(repo, "config.json"), config)
    d, weights = 768, {}
    for name, value in gpt2_weights(rng, 50257, 1024, d, 12).items():
        # GPT-2's initialisation: N(0, 0.02) matrices, unit LayerNorm gains, zero biases.
        if name.endswith(".bias"):
            weights[name] = np.zeros_like(value)
        elif value.ndim == 1:
            weights[name] = np.ones_like(value)
        else:
            weights[name] = (value * (0.02 / value.std())).astype(np.float32)
    save_file(weights, os.path.join(repo, "model.safetensors"), metadata={"format": "pt"})
    params = sum(v.size for v in weights.values())
    print("wrote", repo, f"({params} parameters)")


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")


def main(out):
    rng = np.random.default_rng(20261201)

    # GPT-2's tokenizer and vocabulary, tiny width.
    repo = os.path.join(out, "tiny-gpt2")
    os.makedirs(repo, exist_ok=True)
    write_json(os.path.join(repo, "config.json"), gpt2_config(50257, 64, 8, 2, 2))
    weights = {k: v.astype(np.float16) for k, v in gpt2_weights(rng, 50257, 64, 8, 2).items()}
    save_file(weights, os.path.join(repo, "model.safetensors"), metadata={"format": "pt"})

    # Its own small BPE, sharded weights.
    repo = os.path.join(out, "tiny-codegpt")
    os.makedirs(repo, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([TRAIN_TEXT] * 4, trainer)
    vocab = tok.get_vocab_size()
    tok.save(os.path.join(repo, "tokenizer.json"))
    write_json(os.path.join(repo, "config.json"), gpt2_config(vocab, 128, 16, 2, 2))
    weights = gpt2_weights(rng, vocab, 128, 16, 2, prefix="transformer.")
    names = sorted(weights)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    weight_map = {}
    for file, keys in shards.items():
        save_file({k: weights[k] for k in keys}, os.path.join(repo, file), metadata={"format": "pt"})
        weight_map.update({k: file for k in keys})
    total = sum(v.nbytes for v in weights.values())
    write_json(os.path.join(repo, "model.safetensors.index.json"), {"metadata": {"total_size": total}, "weight_map": weight_map})
    print("wrote", out, f"(tiny-codegpt vocabulary: {vocab})")
