"""The last step of scripts/bench-decoder-gpu.sh: OUT.md and OUT.json from the run's `hnet-gpt bench` files
(WEIGHTS-PROMPT.json for weights in f32 and f16, a short and a long prompt)."""
import argparse
import json
import os


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--dir", required=True)
    a.add_argument("--short", type=int, required=True)
    a.add_argument("--prompt", type=int, required=True)
    a.add_argument("--command", required=True)
    a.add_argument("--out", required=True)
    args = a.parse_args()
    prompts = [p for p in (args.short, args.prompt) if p > 0]
    runs = {w: {p: json.load(open(os.path.join(args.dir, f"{w}-{p}.json"))) for p in prompts} for w in ("f32", "f16")}
    first = runs["f32"][prompts[0]]
    mib = lambda b: "n/a" if b is None else f"{b / 2**20:,.0f} MiB"
    # Device memory with the model loaded, the largest of a weight type's runs (0 where the backend does not say).
    loaded = {w: max(runs[w][p]["weights"]["device_memory_bytes"]["loaded"] or 0 for p in prompts) for w in runs}
    L = ["# Qwen2.5-Coder-0.5B's shapes on a GPU backend, weights in f32 and in f16", "",
         f"Made by `{args.command}` (log: `{os.path.basename(args.out)}.log`). A repository of Qwen2.5-Coder-0.5B's exact "
         f"shapes and vocabulary ({first['parameters']:,} parameters) with random bf16 weights, imported, then `hnet-gpt bench` "
         "once per row: greedy generation after the prompt, its weight matrices kept in f32 or in f16 (`--weights`: as the "
         "playground keeps them on a WebGPU adapter with shader-f16; the layers compute in f32). Device memory is what burn's "
         "allocator holds on the device (its pools keep freed buffers for reuse: the high-water mark the device must provide, "
         "the figure the playground shows as GPU memory).", "",
         f"Device: {first['device']}.", "",
         "| weights | bytes of weights | device memory, loaded | prompt (tokens) | first token (s) | decoding (tokens/s) | device memory after generating |",
         "|---|---:|---:|---:|---:|---:|---:|"]
    for w in ("f32", "f16"):
        for p in prompts:
            r = runs[w][p]
            g, m = r["generate"], r["weights"]["device_memory_bytes"]
            L.append(f"| {w} | {mib(r['weights']['bytes'])} | {mib(m['loaded'])} | {p} | {g['time_to_first_token_seconds']:.2f} | "
                     f"{g['decode_tokens_per_second']:.2f} ({g['new_tokens']} tokens) | {mib(m['after_generation'])} |")
    half, full = loaded["f16"], loaded["f32"]
    if half and full:
        L += ["", f"With its weights in f16 the loaded model holds {half / full:.2f}× the device memory of f32 "
              f"({mib(half)} against {mib(full)}; the largest of the runs' figures)."]
    L.append("")
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(L))
    with open(args.out + ".json", "w") as f:
        json.dump({"command": args.command, "runs": runs}, f, indent=1)
    print("\n".join(L))


if __name__ == "__main__":
    main()
