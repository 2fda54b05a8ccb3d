"""The reference side of scripts/bench-decoder.sh: a modern decoder of Qwen2.5-Coder-0.5B's exact shape with random
weights, greedy generation with transformers (and llama.cpp, when llama-cpp-python is installed). Prints JSON.

    python scripts/bench/decoder.py init --out HF_DIR                       # the repository both tools read (bf16, as shipped)
    python scripts/bench/decoder.py torch --hf HF_DIR --prompt HNET.json --new-tokens 256
    python scripts/bench/decoder.py gguf --hf HF_DIR --type f32|f16 --out MODEL.gguf     # the same weights for llama.cpp
    python scripts/bench/decoder.py llama-cpp --gguf MODEL.gguf --prompt HNET.json --new-tokens 256

The GGUF is written with llama.cpp's own writer (the `gguf` package) rather than its convert_hf_to_gguf.py, which
needs Qwen's real tokenizer files to recognise the pre-tokenizer; the benchmark feeds token ids, so the file's
vocabulary is placeholders of the right size.
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


def to_gguf(args):
    """Qwen2 tensors under llama.cpp's names; matrices in f32 or f16, norms and biases in f32 (as its converter
    writes them)."""
    import numpy as np
    import gguf
    from safetensors.torch import load_file
    import torch
    c = json.load(open(f"{args.hf}/config.json"))
    tensors = load_file(f"{args.hf}/model.safetensors")
    w = gguf.GGUFWriter(args.out, "qwen2")
    w.add_context_length(c["max_position_embeddings"])
    w.add_embedding_length(c["hidden_size"])
    w.add_block_count(c["num_hidden_layers"])
    w.add_feed_forward_length(c["intermediate_size"])
    w.add_head_count(c["num_attention_heads"])
    w.add_head_count_kv(c["num_key_value_heads"])
    w.add_rope_freq_base(c["rope_theta"] if "rope_theta" in c else c["rope_parameters"]["rope_theta"])
    w.add_layer_norm_rms_eps(c["rms_norm_eps"])
    half = args.type == "f16"
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if half else gguf.LlamaFileType.ALL_F32)
    n_vocab = c["vocab_size"]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list([f"<t{i}>" for i in range(n_vocab)])
    w.add_token_types([gguf.TokenType.NORMAL] * n_vocab)
    w.add_token_merges(["< t"])
    w.add_bos_token_id(n_vocab - 1)
    w.add_eos_token_id(n_vocab - 1)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per_layer = {"input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
                 "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                 "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down"}
    for name, t in tensors.items():
        if name == "lm_head.weight" and c.get("tie_word_embeddings"):
            continue
        if name.startswith("model.layers."):
            i, rest = name[len("model.layers."):].split(".", 1)
            key = next(k for k in per_layer if rest.startswith(k))
            target = f"blk.{i}.{per_layer[key]}{rest[len(key):]}"
        else:
            target = names[name]
        data = t.to(torch.float32).numpy()
        if half and data.ndim == 2:
            data = data.astype(np.float16)
        w.add_tensor(target, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(json.dumps({"out": args.out, "type": args.type, "tensors": len(tensors)}))


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
    g = sub.add_parser("gguf")
    g.add_argument("--hf", required=True)
    g.add_argument("--type", choices=["f32", "f16"], required=True)
    g.add_argument("--out", required=True)
    args = p.parse_args()
    {"init": init, "gguf": to_gguf, "torch": run_torch, "llama-cpp": run_llama_cpp}[args.cmd](args)


if __name__ == "__main__":
    main()
