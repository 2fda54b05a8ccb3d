"""The last step of scripts/bench-decoder.sh: docs/results/bench/decoder-0.5b.{md,json} from the run's files (medians
over the interleaved rounds; peak resident memory as GNU time reports it)."""
import argparse
import json
import os
import platform
import re
import statistics


def peak_kb(path):
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(path).read())
    return int(m.group(1)) if m else None


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--dir", required=True)
    a.add_argument("--rounds", type=int, required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--llama", default="")
    args = a.parse_args()
    d = args.dir
    rounds = range(1, args.rounds + 1)
    load = lambda name, r: json.load(open(os.path.join(d, f"{name}.{r}.json")))
    gen = lambda j: j.get("generate", j)
    tools = [("hnet-gpt", "hnet", "hnet-ttft"), ("transformers (PyTorch, f32)", "torch", "torch-ttft")]
    tools += [(f"llama.cpp ({t})", f"llama-{t}", f"llama-{t}-ttft") for t in args.llama.split()]
    rows, raw = [], {}
    for label, name, ttft_name in tools:
        speed = [gen(load(name, r))["tokens_per_second"] for r in rounds]
        ttft = [gen(load(ttft_name, r))["time_to_first_token_seconds"] for r in rounds]
        rss = [peak_kb(os.path.join(d, f"{name}.{r}.time")) for r in rounds]
        rss_ttft = [peak_kb(os.path.join(d, f"{ttft_name}.{r}.time")) for r in rounds]
        outputs = [gen(load(name, r))["generated"] for r in rounds]
        raw[name] = {"tokens_per_second": speed, "ttft_seconds": ttft, "peak_rss_kb": rss, "peak_rss_kb_1000_prompt": rss_ttft}
        rows.append((label, statistics.median(speed), statistics.median(ttft), max(rss) / 2**20, max(rss_ttft) / 2**20, outputs[0]))
    ours = rows[0]
    hf = rows[1]
    same = sum(a == b for a, b in zip(ours[5], hf[5]))
    hnet = load("hnet", 1)
    import_kb = peak_kb(os.path.join(d, "import.time"))
    L = ["# A modern decoder on the CPU: Qwen2.5-Coder-0.5B's shape", "",
         "Made by `scripts/bench-decoder.sh` (log: `decoder-0.5b.log`). A repository of Qwen/Qwen2.5-Coder-0.5B's exact "
         f"shape and vocabulary ({hnet['parameters']:,} parameters; 24 layers × 896, 14 query / 2 key-value heads, SwiGLU 4864, "
         "151,936 tokens, tied head) with random weights at its initialisation scale, stored in bf16 as the real one is. "
         f"Greedy generation of {len(ours[5])} tokens after a {hnet['generate']['prompt_tokens']}-token prompt, and the time to the "
         "first token of a 1,000-token prompt; medians of the interleaved rounds; peak resident memory of each process "
         f"(GNU time, the largest round). Machine: {cpu_model()}, {os.cpu_count()} threads for every tool.", "",
         "| tool | tokens/s | ratio to transformers | first token, 1,000-token prompt (s) | peak RSS, generating (GiB) | peak RSS, 1,000-token prompt (GiB) |",
         "|---|---:|---:|---:|---:|---:|"]
    for label, speed, ttft, rss, rss_t, _ in rows:
        L.append(f"| {label} | {speed:.1f} | {speed / hf[1]:.2f}× | {ttft:.2f} | {rss:.2f} | {rss_t:.2f} |")
    L += ["", f"hnet-gpt and transformers agree on {same} of {len(ours[5])} greedy tokens (random weights give nearly flat "
          "distributions, where the last bits of a float sum can decide an argmax).",
          *[f"llama.cpp ({label.split('(')[1].rstrip(')')}) decodes at {speed:.1f} tokens/s: hnet-gpt runs at "
            f"{ours[1] / speed:.2f}× its speed; its first token comes {ttft:.2f} s after the prompt against our {ours[2]:.2f} s."
            for label, speed, ttft, _, _, _ in rows[2:]],
          f"`hnet-gpt import-hf` of the bf16 repository: peak RSS {import_kb / 2**20:.2f} GiB (the model in f32 is "
          f"{4 * hnet['parameters'] / 2**30:.2f} GiB; the bf16 file, memory-mapped, {2 * hnet['parameters'] / 2**30:.2f} GiB).", ""]
    with open(os.path.join(args.out, "decoder-0.5b.md"), "w") as f:
        f.write("\n".join(L))
    with open(os.path.join(args.out, "decoder-0.5b.json"), "w") as f:
        json.dump({"rounds": args.rounds, "raw": raw, "import_peak_rss_kb": import_kb, "parameters": hnet["parameters"],
                   "same_greedy_tokens": same}, f, indent=1)
    print("\n".join(L))


if __name__ == "__main__":
    main()
