"""The parity fixtures of the decoder families (model/tests/families.rs, cli/tests/hub.rs): tiny random
transformers models saved with `save_pretrained`, each with a small byte-level BPE of its own and the reference
outputs transformers computes.

Run through `scripts/gen-reference.sh` (torch CPU + transformers in a venv), which calls
`gen_reference.py --families model/tests/fixtures`. Written:

- `hf-tiny-llama/`: LlamaForCausalLM, 4 query heads on 2 key/value heads, rope_theta 10000, an untied LM head, a
  tokenizer without fill-in-the-middle tokens;
- `hf-tiny-qwen2/`: Qwen2ForCausalLM, 4:2 heads, q/k/v biases, rope_theta 1e6, tied head, Qwen's FIM tokens
  (`<|fim_prefix|>`, `<|fim_suffix|>`, `<|fim_middle|>`, …);
- `hf-tiny-gpt-bigcode/`: GPTBigCodeForCausalLM, multi-query, `gelu_pytorch_tanh`, tied head, StarCoder's FIM tokens.

`reference.json` holds, per prompt, the logits at every position and transformers' greedy `generate` (no
end-of-text stop: the configs name none, so all 16 tokens come); and the FIM prompts as the tokenizer itself
encodes them. Weights are drawn with a large spread, as in the GPT-2 fixture, so logits differ by whole units and a
wrong transpose or head grouping cannot hide within 1e-4.
"""
import json
import os

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (GPTBigCodeConfig, GPTBigCodeForCausalLM, LlamaConfig, LlamaForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM, PreTrainedTokenizerFast)

VOCAB = 512
TEXT = open(os.path.join(os.path.dirname(__file__), "hub_fixtures.py")).read()
PROMPTS = [
    "def fibonacci(n):\n    a, b = 0, 1\n",
    "class Stack:\n    def push(self, item):\n        self.items.append(item)\n",
    "import os\n\n\ndef list_files(path):\n    return sorted(os.listdir(path))\n" * 2,
]
FIM = [("def add(a, b):\n    ", "\n    return result\n"), ("x = [", "]\nprint(x)\n")]
SPECIALS = {
    "llama": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
    "qwen2": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
              "<|repo_name|>", "<|file_sep|>"],
    "gpt_bigcode": ["<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>", "<filename>", "<gh_stars>"],
}
FIM_TOKENS = {"qwen2": ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"), "gpt_bigcode": ("<fim_prefix>", "<fim_suffix>", "<fim_middle>")}


def tokenizer(family):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB - 16, special_tokens=SPECIALS[family],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([TEXT], trainer)
    return tok


def spread(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif p.dim() == 1:
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))


def build(family):
    common = dict(vocab_size=VOCAB, bos_token_id=None, eos_token_id=None, pad_token_id=None)
    if family == "llama":
        config = LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=10000.0,
                             tie_word_embeddings=False, **common)
        return LlamaForCausalLM(config)
    if family == "qwen2":
        config = Qwen2Config(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-6, rope_theta=1e6,
                             tie_word_embeddings=True, use_sliding_window=False, **common)
        return Qwen2ForCausalLM(config)
    config = GPTBigCodeConfig(n_embd=32, n_layer=2, n_head=4, n_positions=128, multi_query=True,
                              activation_function="gelu_pytorch_tanh", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                              **common)
    return GPTBigCodeForCausalLM(config)


def write(family, out):
    torch.manual_seed({"llama": 11, "qwen2": 12, "gpt_bigcode": 13}[family])
    os.makedirs(out, exist_ok=True)
    tok = tokenizer(family)
    tok.save(os.path.join(out, "tokenizer.json"))
    model = build(family).eval()
    spread(model)
    model.save_pretrained(out, safe_serialization=True)
    fast = PreTrainedTokenizerFast(tokenizer_file=os.path.join(out, "tokenizer.json"))
    cases = []
    with torch.no_grad():
        for text in PROMPTS:
            ids = fast.encode(text)
            x = torch.tensor([ids])
            logits = model(x).logits[0]
            greedy = model.generate(x, do_sample=False, max_new_tokens=16, attention_mask=torch.ones_like(x))[0, len(ids):]
            assert len(greedy) == 16
            cases.append({"text": text, "ids": ids, "logits": [[round(v, 6) for v in row] for row in logits.tolist()],
                          "greedy": greedy.tolist()})
    fim = []
    if family in FIM_TOKENS:
        pre, suf, mid = FIM_TOKENS[family]
        for prefix, suffix in FIM:
            fim.append({"prefix": prefix, "suffix": suffix, "ids": fast.encode(f"{pre}{prefix}{suf}{suffix}{mid}")})
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump({"torch": torch.__version__, "family": family, "cases": cases, "fim": fim}, f)
    print("wrote", out)


def main(root):
    for family, name in [("llama", "hf-tiny-llama"), ("qwen2", "hf-tiny-qwen2"), ("gpt_bigcode", "hf-tiny-gpt-bigcode")]:
        write(family, os.path.join(root, name))
