"""The PyTorch side of scripts/bench.sh: Hugging Face GPT2LMHeadModel of the same configuration as hnet-gpt's
preset, trained with torch.optim.AdamW on random tokens, and greedy `generate` with the same weights hnet-gpt
imports. Prints JSON.

    python scripts/bench/torch_side.py init --config CONFIG.json --out HF_DIR          # random weights for both tools
    python scripts/bench/torch_side.py run  --config CONFIG.json --hf HF_DIR --prompt HNET.json [...]
"""
import argparse
import json
import os
import platform
import time

import torch
import torch.nn.functional as F
import transformers
from transformers import GPT2Config, GPT2LMHeadModel


def hf_config(c):
    g = c["gpt2"]
    return GPT2Config(vocab_size=g["vocab_size"], n_positions=g["n_positions"], n_embd=g["n_embd"], n_layer=g["n_layer"],
                      n_head=g["n_head"], layer_norm_epsilon=g["layer_norm_epsilon"], resid_pdrop=0.0, embd_pdrop=0.0,
                      attn_pdrop=0.0, activation_function="gelu_new", tie_word_embeddings=True)


def matmul_peak(n, device, dtype):
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    (a @ b).sum().item()
    best, reps = 0.0, 5
    for _ in range(3):
        t = time.perf_counter()
        acc = a @ b
        for _ in range(reps - 1):
            acc = acc + a @ b
        acc.sum().item()
        best = max(best, 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9)
    return {"n": n, "dtype": str(dtype).replace("torch.", ""), "gflops": best}


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def train(model, args, device):
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
    g = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    data = torch.randint(0, vocab, (args.batch_size * 4, args.seq_len + 1), generator=g).to(device)
    autocast = torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=args.bf16)
    times, loss_value = [], float("nan")
    for step in range(args.warmup_steps + args.train_steps):
        rows = [(step * args.batch_size + i) % data.shape[0] for i in range(args.batch_size)]
        x = data[rows]
        sync(device)
        t = time.perf_counter()
        with autocast:
            logits = model(input_ids=x[:, :-1]).logits
            loss = F.cross_entropy(logits.float().reshape(-1, vocab), x[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss_value = loss.item()  # one read per step, as hnet-gpt's loop does
        if step >= args.warmup_steps:
            times.append(time.perf_counter() - t)
    mean = sum(times) / len(times)
    return {"batch_size": args.batch_size, "seq_len": args.seq_len, "warmup_steps": args.warmup_steps, "steps": args.train_steps,
            "parameters": sum(p.numel() for p in model.parameters()), "step_seconds": times,
            "median_step_seconds": sorted(times)[len(times) // 2], "tokens_per_second": args.batch_size * args.seq_len / mean,
            "last_loss": loss_value,
            "optimizer": "torch.optim.AdamW (default implementation), clip_grad_norm_ 1.0" + (", bf16 autocast" if args.bf16 else ", f32")}


@torch.no_grad()
def generate(model, prompt, new_tokens, runs, device):
    model.eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    ids = torch.tensor([prompt], device=device)
    kw = dict(do_sample=False, use_cache=True, attention_mask=torch.ones_like(ids))
    best = None
    for _ in range(max(runs, 1)):
        sync(device)
        t = time.perf_counter()
        model.generate(ids, max_new_tokens=1, **kw)
        sync(device)
        ttft = time.perf_counter() - t
        t = time.perf_counter()
        out = model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kw)
        sync(device)
        total = time.perf_counter() - t
        if best is None or total < best[1]:
            best = (ttft, total, out[0, len(prompt):].tolist())
    ttft, total, gen = best
    return {"prompt_tokens": len(prompt), "new_tokens": len(gen), "runs": max(runs, 1), "time_to_first_token_seconds": ttft,
            "total_seconds": total, "tokens_per_second": len(gen) / total,
            "decode_tokens_per_second": (len(gen) - 1) / max(total - ttft, 1e-9), "generated": gen,
            "note": "Hugging Face generate (greedy, KV cache); time to first token measured as a separate 1-token generate"}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["init", "run"])
    p.add_argument("--config", required=True, help="hnet-gpt's ModelConfig JSON (hnet-gpt info --json)")
    p.add_argument("--out")
    p.add_argument("--hf")
    p.add_argument("--prompt", help="hnet-gpt bench JSON whose generate.prompt is used")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--train-steps", type=int, default=10)
    p.add_argument("--warmup-steps", type=int, default=2)
    p.add_argument("--new-tokens", type=int, default=256)
    p.add_argument("--gen-runs", type=int, default=2)
    p.add_argument("--matmul-size", type=int, default=1024)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast in training (GPU, or a CPU with AMX)")
    args = p.parse_args()
    config = json.load(open(args.config))
    config = config.get("config", config)
    torch.manual_seed(0)
    if args.mode == "init":
        model = GPT2LMHeadModel(hf_config(config))
        model.save_pretrained(args.out, safe_serialization=True)
        return
    threads = torch.get_num_threads()
    out = {"tool": "pytorch", "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
           "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(0), "threads": threads,
           "matmul": matmul_peak(args.matmul_size, args.device, torch.float32)}
    if args.device == "cuda":
        out["matmul_bf16"] = matmul_peak(8192, args.device, torch.bfloat16)
    if args.train_steps > 0:
        model = GPT2LMHeadModel(hf_config(config)).to(args.device)
        out["train"] = train(model, args, args.device)
        del model
    if args.new_tokens > 0:
        prompt = json.load(open(args.prompt))["generate"]["prompt"]
        model = GPT2LMHeadModel.from_pretrained(args.hf).to(args.device)
        out["generate"] = generate(model, prompt, args.new_tokens, args.gen_runs, args.device)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
