"""The last step of scripts/train-default.sh: docs/results/default-model.md from the recipe's run directory, the
better model bundled as public/models/default.safetensors, both listed in public/models/models.json.

    python default_model_report.py --out runs/default --recipe runs/default/recipe.log \
        --report docs/results/default-model.md --models public/models
"""
import argparse
import json
import lzma
import os
import shutil
import subprocess

import math


def load(path):
    return json.load(open(path))


def compressor_bpb(paths):
    """Per-file xz and zstd bits per byte (each file compressed alone, as the model scores each file alone)."""
    total, xz, zs = 0, 0, 0
    for p in paths:
        data = open(p, "rb").read()
        if not data:
            continue
        total += len(data)
        xz += len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))
        zs += len(subprocess.run(["zstd", "-19", "-c", p], capture_output=True, check=True).stdout)
    return (8 * xz / total, 8 * zs / total, len(paths), total) if total else (None, None, 0, 0)


def fmt(x, d=3):
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--out", required=True)
    a.add_argument("--recipe", required=True)
    a.add_argument("--report", required=True)
    a.add_argument("--models", required=True)
    args = a.parse_args()
    out = args.out
    manifest = load(os.path.join(out, "corpus", "manifest.json"))
    root = manifest["roots"][0]
    valid_files = [os.path.join(root, json.loads(l)["path"]) for l in open(os.path.join(out, "corpus", "files.jsonl"))
                   if json.loads(l)["split"] == "valid"]
    xz, zs, n_files, n_bytes = compressor_bpb([p for p in valid_files if os.path.exists(p)])
    rows, models = {}, []
    for arch in ["gpt2", "hybrid"]:
        ev, std = load(os.path.join(out, f"{arch}-eval.json")), load(os.path.join(out, f"{arch}-stdlib.json"))
        summary = load(os.path.join(out, arch, "summary.json"))
        samples = [json.loads(l) for l in open(os.path.join(out, f"{arch}-samples.jsonl"))]
        size = os.path.getsize(os.path.join(out, f"{arch}.safetensors"))
        rows[arch] = dict(ev=ev, std=std, summary=summary, samples=samples, size=size)
        subprocess.run([os.environ.get("BIN", "hnet-gpt"), "plot", os.path.join(out, arch)], check=False)
    best = min(rows, key=lambda k: rows[k]["ev"]["perplexity"]["bits_per_byte"])
    os.makedirs(os.path.join(os.path.dirname(args.report), "default-model"), exist_ok=True)
    for arch in rows:
        svg = os.path.join(out, arch, "loss.svg")
        if os.path.exists(svg):
            shutil.copy(svg, os.path.join(os.path.dirname(args.report), "default-model", f"{arch}-loss.svg"))
        dest = "default.safetensors" if arch == best else f"default-{arch}.safetensors"
        shutil.copy(os.path.join(out, f"{arch}.safetensors"), os.path.join(args.models, dest))
        r = rows[arch]
        ppl = r["ev"]["perplexity"]
        about = (f"{r['summary']['parameters'] / 1e6:.1f}M-parameter {arch} trained for {r['summary']['steps']} steps "
                 f"({r['summary']['tokens'] / 1e6:.0f}M tokens) on {manifest['splits']['train']['packages']} permissively licensed "
                 f"Python packages; {ppl['bits_per_byte']:.2f} bits per byte on {manifest['splits']['valid']['packages']} packages "
                 f"it never saw (docs/results/default-model.md).")
        models.append({"arch": arch, "label": f"{arch} · {r['ev']['parameters'] / 1e6:.0f}M · Python packages",
                       "url": f"public/models/{dest}", "about": about, "default": arch == best})
    models.sort(key=lambda m: not m["default"])
    for m in models:
        m.pop("default")
    json.dump({"models": models}, open(os.path.join(args.models, "models.json"), "w"), indent=2)

    L = ["# The bundled model", "",
         f"Made by `scripts/train-default.sh` (log: `default-model/recipe.log`). Corpus: `hnet-gpt data prepare` of a "
         f"Python environment's site-packages — {manifest['splits']['train']['tokens'] + manifest['splits']['valid']['tokens']:,} "
         f"tokens from {manifest['splits']['train']['files'] + manifest['splits']['valid']['files']:,} files of "
         f"{manifest['splits']['train']['packages'] + manifest['splits']['valid']['packages']} packages "
         f"({sum(1 for p in manifest['packages'] if p.get('excluded'))} left out), split by package: validation is "
         f"{manifest['splits']['valid']['tokens']:,} tokens of {manifest['splits']['valid']['packages']} packages never trained on "
         f"({', '.join(manifest['split']['valid_packages'][:12])}{', …' if len(manifest['split']['valid_packages']) > 12 else ''}). "
         f"The CPython standard library is a second held-out set. Bundled: **{best}** (lower bits per byte on the held-out packages).", "",
         "| measure | gpt2 | hybrid |", "|---|---:|---:|"]
    g, h = rows["gpt2"], rows["hybrid"]
    def both(f, d=3):
        return f"| {{}} | {fmt(f(g), d)} | {fmt(f(h), d)} |"
    L.append(both(lambda r: r["summary"]["parameters"] / 1e6, 1).format("parameters, millions"))
    L.append(both(lambda r: r["size"] / 2**20, 1).format("download, MiB (f16)"))
    L.append(both(lambda r: r["summary"]["tokens"] / 1e6, 1).format("training tokens, millions"))
    L.append(both(lambda r: r["ev"]["perplexity"]["bits_per_byte"]).format("bits per byte, held-out packages"))
    L.append(both(lambda r: r["ev"]["perplexity"]["perplexity"], 2).format("perplexity, held-out packages"))
    L.append(both(lambda r: r["std"]["perplexity"]["bits_per_byte"]).format("bits per byte, CPython stdlib"))
    L.append(both(lambda r: r["std"]["perplexity"]["perplexity"], 2).format("perplexity, CPython stdlib"))
    L.append(both(lambda r: (r["ev"].get("header_syntax") or {}).get("rate")).format("header completions that parse"))
    for k in ["pass@1", "pass@10"]:
        L.append(both(lambda r, k=k: (r["ev"].get("humaneval") or {}).get(k)).format(f"HumanEval {k}"))
    L += [f"| xz -9e, per file (floor) | {fmt(xz)} | |", f"| zstd -19, per file (floor) | {fmt(zs)} | |", "",
          f"Compressors: the same {n_files} validation files ({n_bytes:,} bytes), each compressed alone.", "",
          "## Sample completions, as they come out", ""]
    for arch in rows:
        L.append(f"### {arch}")
        for s in rows[arch]["samples"]:
            L += ["", f"`{s['prompt']!r}` ({s['mode']}):", "```python", s["prompt"] + s["completion"], "```"]
        L.append("")
    L += ["## The seed's five prompts", "", "```json", json.dumps(rows[best]["ev"]["seed_five_prompts"], indent=1)[:4000], "```", ""]
    open(args.report, "w").write("\n".join(L))
    shutil.copy(args.recipe, os.path.join(os.path.dirname(args.report), "default-model", "recipe.log"))
    print("\n".join(L[:30]))


if __name__ == "__main__":
    main()
