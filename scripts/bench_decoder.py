"""The reference side of scripts/bench-decoder.sh: a modern decoder of Qwen2.5-Coder-0.5B's exact shape with random
weights, greedy generation with transformers (and llama.cpp, when llama-cpp-python is installed). Prints JSON.

    python bench_decoder.py init --out HF_DIR                       # the repository both tools read (bf16, as shipped)
    python bench_decoder.py torch --hf HF_DIR --prompt HNET.json --new-tokens 256
    python bench_decoder.py llama-cpp --gguf MODEL.gguf --prompt HNET.json --new-tokens 256
"""
import argparse
import json
import platform
import time

# Qwen/Qwen2.5-Coder-0.5B's config.json (the fields that set its shape and math).
QWEN_05B = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000.0, vocab_size=151936,
                tie_word_embeddings=True, use_sliding_window=False, hidden_act="silu", bos_token_id=None, eos_token_id=None,
                pad_token_id=None)


def init(args):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM
    torch.manual_seed(0)
    # Random weights at the model's own initialisation scale (initializer_range 0.02), stored in bf16 as the real one is.
    model = Qwen2ForCausalLM(Qwen2Config(**QWEN_05B)).to(torch.bfloat16)
    model.save_pretrained(args.out, safe_serialization=True)
    print(json.dumps({"parameters": sum(p.numel() for p in model.parameters()), "out": args.out}))


def run_torch(args):
    import torch
    import transformers
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(args.threads)
    prompt = json.load(open(args.prompt))["generate"]["prompt"]
    model = AutoModelForCausalLM.from_pretrained(args.hf, dtype=torch.float32).eval()
    out = {"tool": "transformers", "torch": torch.__version__, "transformers": transformers.__version__, "threads": args.threads}
    with torch.no_grad():
        x = torch.tensor([prompt])
        mask = torch.ones_like(x)
        model.generate(x[:, :8], attention_mask=mask[:, :8], do_sample=False, max_new_tokens=2)  # warm-up
        t = time.perf_counter()
        model.generate(x, attention_mask=mask, do_sample=False, max_new_tokens=1)
        ttft_prompt = time.perf_counter() - t
        t = time.perf_counter()
        ids = model.generate(x, attention_mask=mask, do_sample=False, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens)
        total = time.perf_counter() - t
    generated = ids[0, len(prompt):].tolist()
    out.update(prompt_tokens=len(prompt), new_tokens=len(generated), total_seconds=total, time_to_first_token_seconds=ttft_prompt,
               tokens_per_second=len(generated) / total, generated=generated)
    print(json.dumps(out))


def run_llama_cpp(args):
    import llama_cpp
    prompt = json.load(open(args.prompt))["generate"]["prompt"]
    llm = llama_cpp.Llama(model_path=args.gguf, n_ctx=max(2048, len(prompt) + args.new_tokens + 8), n_threads=args.threads,
                          n_batch=512, verbose=False, logits_all=False)
    llm.eval(prompt[:8])  # warm-up
    llm.reset()
    t = time.perf_counter()
    llm.eval(prompt)
    ttft = time.perf_counter() - t
    llm.reset()
    t = time.perf_counter()
    generated = []
    for token in llm.generate(prompt, temp=0.0, top_k=1, reset=True):
        generated.append(token)
        if len(generated) == args.new_tokens:
            break
    total = time.perf_counter() - t
    print(json.dumps({"tool": "llama.cpp", "llama_cpp_python": llama_cpp.__version__, "threads": args.threads, "gguf": args.gguf,
                      "prompt_tokens": len(prompt), "new_tokens": len(generated), "total_seconds": total,
                      "time_to_first_token_seconds": ttft, "tokens_per_second": len(generated) / total, "generated": generated}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("init")
    a.add_argument("--out", required=True)
    for name in ["torch", "llama-cpp"]:
        r = sub.add_parser(name)
        r.add_argument("--hf")
        r.add_argument("--gguf")
        r.add_argument("--prompt", required=True)
        r.add_argument("--new-tokens", type=int, default=256)
        r.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    {"init": init, "torch": run_torch, "llama-cpp": run_llama_cpp}[args.cmd](args)


if __name__ == "__main__":
    main()
