"""Merges the JSON of one scripts/bench.sh run into docs/results/bench/<name>.json and .md and prints the table.

A run measures each tool in one or more interleaved rounds (`hnet-ARCH.R.json`, `torch.R.json`); the table shows
each measure's median over the rounds (and the spread of the headline ratios), the JSON keeps every round.

    python scripts/bench/report.py --dir RUN_DIR --name cpu --command "scripts/bench.sh ..." --out docs/results/bench
"""
import argparse
import json
import os
import platform
import statistics
import subprocess


def load(path):
    return json.load(open(path)) if os.path.exists(path) else None


def train_flops_per_token(config, params, seq_len):
    """6 FLOPs per matmul weight per token (forward 2, backward 4) plus attention's 12·L·d·T; the tied LM head counts
    as a matmul, the position table does not. H-Net stages count their attention at full length (an upper bound:
    the main network runs on chunks)."""
    g = config["gpt2"]
    d = g["n_embd"]
    layers = g["n_layer"] + sum(s["n_layer"] for s in (config.get("hnet") or {}).values() if isinstance(s, dict))
    return 6 * (params - g["n_positions"] * d) + 12 * layers * d * seq_len


def rounds(directory, stem):
    """Every round's JSON of one tool, in round order."""
    runs, r = [], 1
    while os.path.exists(os.path.join(directory, f"{stem}.{r}.json")):
        runs.append(load(os.path.join(directory, f"{stem}.{r}.json")))
        r += 1
    return runs


# The measures a round gives, by path; the median run holds each one's median over the rounds (the matmul peak is a
# best-of measure, so its best).
MEDIAN = [("train", "tokens_per_second"), ("train", "median_step_seconds"), ("generate", "tokens_per_second"),
          ("generate", "decode_tokens_per_second"), ("generate", "time_to_first_token_seconds")]


def median_run(runs):
    """The first round with every measure replaced by its median over `runs` (None when there are none)."""
    if not runs:
        return None
    out = json.loads(json.dumps(runs[0]))
    for part, key in MEDIAN:
        if part in out:
            out[part][key] = statistics.median(r[part][key] for r in runs)
    phases = out.get("train", {}).get("median_phase_seconds")
    if phases:
        for phase in phases:
            phases[phase] = statistics.median(r["train"]["median_phase_seconds"][phase] for r in runs)
    out["matmul"]["gflops"] = max(r["matmul"]["gflops"] for r in runs)
    out["rounds"] = len(runs)
    return out


def spread(ours, theirs, part):
    """`lo–hi×` over the rounds' ratios of tokens/s (each round's two runs are neighbours in time); '' for one round."""
    pairs = [(o[part]["tokens_per_second"], t[part]["tokens_per_second"]) for o, t in zip(ours, theirs) if part in o and part in t]
    if len(pairs) < 2:
        return ""
    r = [o / t for o, t in pairs]
    return f" (rounds {min(r):.2f}–{max(r):.2f}×)"


def fmt(x, digits=1):
    return "n/a" if x is None else f"{x:,.{digits}f}"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--command", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    config = load(os.path.join(a.dir, "config.json"))["config"]
    all_ours = {arch: rounds(a.dir, f"hnet-{arch}") for arch in ["gpt2", "hybrid", "hnet", "gpt2-bf16"]}
    all_torch = rounds(a.dir, "torch")
    all_torch_bf16 = rounds(a.dir, "torch-bf16")
    ours = {arch: median_run(runs) for arch, runs in all_ours.items()}
    torch = median_run(all_torch)
    torch_bf16 = median_run(all_torch_bf16)
    peak = max(x["matmul"]["gflops"] for x in [*ours.values(), torch] if x)
    if torch and "matmul_bf16" in torch:
        peak_bf16 = torch["matmul_bf16"]["gflops"]
    else:
        peak_bf16 = None

    def mfu(run, cfg):
        if not run or "train" not in run:
            return None
        cfg = run.get("config", cfg)
        t = run["train"]
        flops = train_flops_per_token(cfg, t["parameters"], t["seq_len"]) * t["tokens_per_second"]
        return 100 * flops / 1e9 / (peak_bf16 if "bf16" in t.get("optimizer", "") and peak_bf16 else peak)

    def tps(run, what="train"):
        return run[what]["tokens_per_second"] if run and what in run else None

    g_ours, g_torch = ours["gpt2"], torch
    rows = []
    t0 = g_ours["train"] if g_ours else {}
    shape = f"batch {t0.get('batch_size')} × {t0.get('seq_len')}"
    rows.append((f"gpt2 training tokens/s ({shape})", fmt(tps(g_ours)), fmt(tps(g_torch)),
                 fmt(ratio(tps(g_ours), tps(g_torch)), 2) + "×" + spread(all_ours["gpt2"], all_torch, "train")))
    rows.append(("gpt2 median step, s", fmt(g_ours and g_ours["train"]["median_step_seconds"], 3),
                 fmt(g_torch and g_torch["train"]["median_step_seconds"], 3), ""))
    phases = (g_ours or {}).get("train", {}).get("median_phase_seconds")
    if phases:
        rows.append(("gpt2 step by phase, s: " + " / ".join(phases), " / ".join(fmt(v, 3) for v in phases.values()), "n/a", ""))
    rows.append(("gpt2 model FLOPs utilisation, % of measured matmul peak", fmt(mfu(g_ours, config), 1), fmt(mfu(g_torch, config), 1), ""))
    m_ours, m_torch = ours["gpt2-bf16"], torch_bf16
    if m_ours or m_torch:
        rows.append((f"gpt2 training tokens/s in mixed precision (hnet-gpt `--precision bf16`: the head's and linear layers' "
                     f"products on bf16 operands with f32 sums; PyTorch: bf16 autocast)", fmt(tps(m_ours)), fmt(tps(m_torch)),
                     fmt(ratio(tps(m_ours), tps(m_torch)), 2) + "×" + spread(all_ours["gpt2-bf16"], all_torch_bf16, "train")))
        rows.append(("…hnet-gpt bf16 against PyTorch f32 (not like for like: different precisions)", fmt(tps(m_ours)),
                     fmt(tps(g_torch)), fmt(ratio(tps(m_ours), tps(g_torch)), 2) + "×"))
        rows.append(("…mixed precision's speed-up over f32, each tool", fmt(ratio(tps(m_ours), tps(g_ours)), 2) + "×",
                     fmt(ratio(tps(m_torch), tps(g_torch)), 2) + "×", ""))
    for arch in ["hybrid", "hnet"]:
        r = ours[arch]
        if r:
            rows.append((f"{arch} training tokens/s (same shape; no PyTorch reference)", fmt(tps(r)), "n/a",
                         fmt(ratio(tps(r), tps(g_ours)), 2) + "× hnet-gpt gpt2" + spread(all_ours[arch], all_ours["gpt2"], "train")))
            rows.append((f"{arch} MFU, % (H-Net attention counted at full length)", fmt(mfu(r, config), 1), "n/a", ""))
    g = (g_ours or {}).get("generate", {})
    rows.append((f"gpt2 greedy generation tokens/s ({g.get('prompt_tokens')}-token prompt, {g.get('new_tokens')} new)", fmt(tps(g_ours, "generate")), fmt(tps(g_torch, "generate")),
                 fmt(ratio(tps(g_ours, "generate"), tps(g_torch, "generate")), 2) + "×" + spread(all_ours["gpt2"], all_torch, "generate")))
    ttft = lambda r: r["generate"]["time_to_first_token_seconds"] * 1000 if r and "generate" in r else None
    rows.append(("time to first token, ms", fmt(ttft(g_ours)), fmt(ttft(g_torch)), ""))
    rows.append(("f32 matmul peak, GFLOP/s (1024², best of 3)", fmt(g_ours and g_ours["matmul"]["gflops"]), fmt(torch and torch["matmul"]["gflops"]), ""))
    same = None
    outputs = [r["generate"]["generated"] for r in all_ours["gpt2"] + all_torch if "generate" in r]
    if g_ours and g_torch and "generate" in g_ours and "generate" in g_torch:
        x = g_ours["generate"]["generated"]
        diverge = min((next((i for i, (u, v) in enumerate(zip(x, y)) if u != v), None) for y in outputs),
                      key=lambda d: len(x) if d is None else d)
        if diverge is None and all(len(y) == len(x) for y in outputs):
            same = f"all {len(x)} tokens identical (both tools, every round)"
        else:
            same = f"first difference at token {diverge}"
    machine = {"cpu": g_ours["device"] if g_ours else None, "os": platform.platform(), "python": platform.python_version(),
               "torch": torch and torch["torch"], "transformers": torch and torch["transformers"],
               "rustc": subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip(),
               "threads": {"hnet-gpt": g_ours and g_ours["threads"], "pytorch": torch and torch["threads"]}}
    os.makedirs(a.out, exist_ok=True)
    result = {"command": a.command, "machine": machine, "config": config, "matmul_peak_gflops": peak, "greedy_tokens": same,
              "rounds": len(all_torch), "hnet_gpt": ours, "pytorch": torch, "pytorch_bf16": torch_bf16,
              "rounds_raw": {"hnet_gpt": all_ours, "pytorch": all_torch, "pytorch_bf16": all_torch_bf16}}
    json.dump(result, open(os.path.join(a.out, f"{a.name}.json"), "w"), indent=1)
    lines = [f"# Benchmark: hnet-gpt vs PyTorch ({a.name})", "",
             f"Measured in one run of `{a.command}` on {machine['cpu']}; PyTorch {machine['torch']}, transformers "
             f"{machine['transformers']}, {machine['rustc']}. Model: preset `{ours['gpt2']['preset'] if ours['gpt2'] else '?'}` "
             f"({config['gpt2']['n_layer']} layers, width {config['gpt2']['n_embd']}, {config['gpt2']['n_head']} heads, vocabulary "
             f"{config['gpt2']['vocab_size']}); both tools train with AdamW on the same random tokens, and generate greedily from the "
             f"same weights (Hugging Face's, imported by `hnet-gpt import-hf`) and the same prompt. Greedy outputs: {same}.", "",
             "| measure | hnet-gpt | PyTorch | ratio |", "|---|---:|---:|---:|"]
    lines += [f"| {m} | {o} | {t} | {r} |" for m, o, t, r in rows]
    order = "hnet-gpt gpt2, PyTorch, hybrid, hnet" + (", hnet-gpt gpt2 bf16, PyTorch bf16" if all_torch_bf16 else "")
    lines += ["", f"Each measure is the median of {len(all_torch)} interleaved round(s) ({order}, "
              "repeated), the matmul peak the best; a ratio's spread is over the rounds' own ratios. "
              "MFU counts 6 FLOPs per matmul weight per token plus attention (12·L·d·T), against the faster of the two "
              "tools' measured f32 matmul throughput on this machine. Raw numbers, every round, every step time and both "
              f"tools' settings: `{a.name}.json`; the run's console output: `{a.name}.log`.", ""]
    open(os.path.join(a.out, f"{a.name}.md"), "w").write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
