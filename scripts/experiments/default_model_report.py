"""The last step of scripts/train-default.sh: docs/results/default-model.md from the recipe's run directory, the
better model bundled as public/models/default.safetensors (the other, if any, as default-<arch>.safetensors), all
listed in public/models/models.json.

    python3 scripts/default_model_report.py --out runs/default --recipe runs/default/recipe.log \
        --report docs/results/default-model.md --models public/models --archs hybrid [gpt2]

Everything in the report is read from the run directory; nothing is typed in. Standard library only (the recipe runs
on a bare machine's python3).
"""
import argparse
import ast
import json
import lzma
import math
import os
import platform
import re
import shutil
import subprocess

STDLIB = "python-stdlib/"
TARGET_BPB = 1.4


def load(path):
    with open(path) as f:
        return json.load(f)


def jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def headers(out, arch, mode):
    """The recipe's run of the `mode` completions of simple headers against their tests: {prompt: (passed, detail)}
    in the order the recipe completed them, or None when it did not run (no sandbox)."""
    path = os.path.join(out, f"{arch}-headers-{mode}.json")
    if not os.path.exists(path):
        return None
    with open(os.path.join(os.path.dirname(__file__), "simple-headers.jsonl")) as f:
        prompts = {p["task_id"]: p["prompt"] for p in map(json.loads, filter(str.strip, f))}
    ran = jsonl(path.removesuffix(".json") + ".jsonl")
    results = load(path)["samples"]
    return {prompts[s["task_id"]]: (res["passed"], res["detail"]) for s, res in zip(ran, results)}


def fmt(x, d=3):
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"


def bpb(nll_nats, n_bytes):
    return nll_nats / math.log(2) / n_bytes if n_bytes else None


class Corpus:
    """The prepared corpus the chosen model trained on: its manifest and, for each scored file, its bytes on disk."""

    def __init__(self, path):
        self.manifest = load(os.path.join(path, "manifest.json"))
        self.roots = self.manifest["roots"]
        self.files = {(r["package"], r["path"]): r for r in jsonl(os.path.join(path, "files.jsonl"))}

    def source(self, package, path):
        """The file's bytes as `data prepare` read them (stdlib modules live under the second root). A file whose
        size no longer matches the manifest is an error: the compressors must see exactly what the model scored."""
        root = self.roots[1] if package.startswith(STDLIB) and len(self.roots) > 1 else self.roots[0]
        with open(os.path.join(root, path), "rb") as f:
            data = f.read()
        expected = self.files[(package, path)]["bytes"]
        if len(data) != expected:
            raise SystemExit(f"{root}/{path}: {len(data)} bytes on disk, {expected} when the corpus was prepared")
        return data


def compressed_bits(data):
    """xz -9e and zstd -19 sizes of one file, compressed alone (as the model scores each file alone), in bits."""
    xz = len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))
    zs = len(subprocess.run(["zstd", "-19", "-c", "-q"], input=data, capture_output=True, check=True).stdout)
    return 8 * xz, 8 * zs


def held_out(corpus, files_eval):
    """Per held-out package and per group (site-packages, stdlib): the model's bits per byte over whole files and the
    compressors' over exactly the same files."""
    rows = []
    for package, p in sorted(files_eval["perplexity"]["by_package"].items()):
        xz = zs = 0
        for path in p["files"]:
            a, b = compressed_bits(corpus.source(package, path))
            xz, zs = xz + a, zs + b
        rows.append(dict(package=package, files=len(p["files"]), bytes=p["bytes"], tokens=p["tokens"], nll=p["nll"],
                         xz=xz, zstd=zs))
    groups = {}
    for name, pick in [("site-packages", lambda r: not r["package"].startswith(STDLIB)),
                       ("CPython stdlib", lambda r: r["package"].startswith(STDLIB)), ("all", lambda r: True)]:
        rs = [r for r in rows if pick(r)]
        n = sum(r["bytes"] for r in rs)
        groups[name] = dict(packages=len(rs), files=sum(r["files"] for r in rs), bytes=n,
                            tokens=sum(r["tokens"] for r in rs), model=bpb(sum(r["nll"] for r in rs), n),
                            xz=sum(r["xz"] for r in rs) / n if n else None,
                            zstd=sum(r["zstd"] for r in rs) / n if n else None)
    return rows, groups


def sweeps(out, recipe_log):
    """The choices at equal compute, as the recipe logged them, with each run's own summary."""
    found = []
    pattern = re.compile(r"^sweep (\S+): (\S+) (\S+) (\S+) lr (\S+), (\d+) steps: (\S+) bits/byte$")
    with open(recipe_log) as f:
        for line in f:
            m = pattern.match(line.strip())
            if not m or any(s["name"] == m.group(1) for s in found):
                continue
            name, arch, shape, corpus, lr, steps, b = m.groups()
            summary = load(os.path.join(out, "sweep", name, "summary.json"))
            found.append(dict(name=name, arch=arch, shape=shape, corpus=corpus, lr=lr, steps=int(steps), bpb=float(b),
                              tokens=summary["tokens"], cpu=summary.get("cpu_seconds"), params=summary["parameters"]))
    return found


def fit_power_law(xs, ys):
    """Least squares of y = a + b·x^(−c) over c on a grid (a and b closed-form for each c): the usual shape of a loss
    curve against compute. The asymptote a must be at least 0 (bits per byte cannot go below it): a short curve
    otherwise fits a near-straight line with a negative floor, which extrapolates to nonsense."""
    best = None
    for i in range(1, 300):
        c = i / 200
        us = [x ** -c for x in xs]
        n, su, sy = len(xs), sum(us), sum(ys)
        suu, suy = sum(u * u for u in us), sum(u * y for u, y in zip(us, ys))
        den = n * suu - su * su
        if den <= 0:
            continue
        b = (n * suy - su * sy) / den
        a = (sy - b * su) / n
        err = sum((a + b * u - y) ** 2 for u, y in zip(us, ys))
        if b > 0 and a >= 0 and (best is None or err < best[0]):
            best = (err, a, b, c)
    return None if best is None else dict(a=best[1], b=best[2], c=best[3], rmse=math.sqrt(best[0] / len(xs)))


def loss_curve(run, bytes_per_token):
    """The long run's validation bits per byte against CPU seconds; a power law fitted on the stable phase (before
    the WSD decay, the last 20% of steps) predicts what more CPU time gives at the same learning rate, and the gain
    the final decay measured is added on top. A run validated fewer than four times in its stable phase is fitted on
    its training loss instead (means of 100-step bins, in bits per byte of the training split), shifted to meet the
    last validation."""
    summary = load(os.path.join(run, "summary.json"))
    rows = jsonl(os.path.join(run, "metrics.jsonl"))
    valid = [r for r in rows if r["kind"] == "valid" and r.get("cpu_seconds")]
    lo, hi = 0.1 * summary["target_steps"], 0.8 * summary["target_steps"]
    stable = [(r["cpu_seconds"], r["bits_per_byte"]) for r in valid if lo <= r["step"] <= hi]
    source = "validation"
    if len(stable) < 4:
        source = "training"
        bins = {}
        for r in rows:
            if r["kind"] == "train" and r.get("cpu_seconds") and lo <= r["step"] <= hi and math.isfinite(r.get("ce", math.nan)):
                bins.setdefault(r["step"] // 100, []).append(r)
        stable = [(sum(r["cpu_seconds"] for r in b) / len(b), sum(r["ce"] for r in b) / len(b) / math.log(2) / bytes_per_token)
                  for _, b in sorted(bins.items()) if len(b) >= 50]
    fit = fit_power_law([t for t, _ in stable], [b for _, b in stable]) if len(stable) >= 4 else None
    out = dict(points=[(r["step"], r["tokens"], r["cpu_seconds"], r["bits_per_byte"]) for r in valid], fit=fit, source=source)
    if fit:
        f = lambda t: fit["a"] + fit["b"] * t ** -fit["c"]
        end = valid[-1]
        decay_gain = f(end["cpu_seconds"]) - end["bits_per_byte"]
        out["decay_gain"] = decay_gain
        out["predictions"] = [(k, k * end["cpu_seconds"], f(k * end["cpu_seconds"]) - decay_gain) for k in (2, 4, 10)]
        # CPU seconds until the fitted curve (with the same decay gain) reaches the target, if it ever does.
        goal = TARGET_BPB + decay_gain
        out["to_target"] = ((fit["b"] / (goal - fit["a"])) ** (1 / fit["c"])) if goal > fit["a"] else None
    return out


def anneal(out, arch, corpus):
    """The anneal after the long run, when the recipe ran one: its run, its corpus, and the long run's weights scored
    on the same held-out whole files (what the anneal changed there)."""
    run = os.path.join(out, f"{arch}-anneal")
    if not os.path.exists(os.path.join(run, "summary.json")):
        return None
    config = load(os.path.join(run, "config.json"))
    data = load(os.path.join(config["data"][0], "manifest.json"))
    rows = jsonl(os.path.join(run, "metrics.jsonl"))
    before = os.path.join(out, f"{arch}-long-files.json")
    return dict(summary=load(os.path.join(run, "summary.json")), train=config["train"], corpus=data,
                corpus_name=os.path.basename(os.path.normpath(config["data"][0])),
                points=[(r["step"], r["tokens"], r["cpu_seconds"], r["bits_per_byte"]) for r in rows if r["kind"] == "valid"],
                before=held_out(corpus, load(before))[1] if os.path.exists(before) else None)


def package_families(manifest):
    """Tokens per package family: the standard library and the site-packages distributions (the largest named)."""
    packs = [p for p in manifest["packages"] if not p.get("excluded")]
    std = [p for p in packs if p["name"].startswith(STDLIB)]
    site = sorted((p for p in packs if not p["name"].startswith(STDLIB)), key=lambda p: -p["tokens"])
    excluded = [p for p in manifest["packages"] if p.get("excluded")]
    return std, site, excluded


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}"


def sanitise(text, out, corpus):
    """The recipe log without this machine's paths."""
    for path, name in [(os.path.realpath(out), "$OUT"), (out, "$OUT")] + [
            (r, f"$ROOT{i}") for i, r in enumerate(corpus.roots)]:
        text = text.replace(path, name)
    # The binary as its name, not where it sat on this machine.
    text = re.sub(r"BIN=/\S*/([^/\s]+)", r"BIN=\1", text)
    return re.sub(r"/(root|home/[^/\s]+)/", "~/", text)


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--out", required=True, help="the recipe's run directory")
    a.add_argument("--recipe", required=True, help="its log")
    a.add_argument("--report", required=True)
    a.add_argument("--models", required=True, help="public/models")
    a.add_argument("--archs", nargs="+", default=["hybrid"])
    args = a.parse_args()
    out, docs = args.out, os.path.dirname(args.report)
    assets = os.path.join(docs, "default-model")
    os.makedirs(assets, exist_ok=True)
    choice = load(os.path.join(out, "choice.json"))
    corpus = Corpus(os.path.join(out, choice["corpus"]))
    manifest = corpus.manifest
    sw = sweeps(out, args.recipe)

    rows = {}
    for arch in args.archs:
        r = dict(summary=load(os.path.join(out, arch, "summary.json")), eval=load(os.path.join(out, f"{arch}-eval.json")),
                 files=load(os.path.join(out, f"{arch}-files.json")), samples=jsonl(os.path.join(out, f"{arch}-samples.jsonl")),
                 size=os.path.getsize(os.path.join(out, f"{arch}.safetensors")), curve=loss_curve(os.path.join(out, arch), manifest["splits"]["train"]["bytes"] / manifest["splits"]["train"]["tokens"]))
        r["packages"], r["groups"] = held_out(corpus, r["files"])
        r["anneal"] = anneal(out, arch, corpus)
        # What the bundled weights cost in all: the long run and its anneal.
        r["total"] = {k: r["summary"][k] + (r["anneal"]["summary"][k] if r["anneal"] else 0) for k in ("tokens", "cpu_seconds")}
        rows[arch] = r
        for run in [arch] + ([f"{arch}-anneal"] if r["anneal"] else []):
            subprocess.run([os.environ.get("BIN", "hnet-gpt"), "plot", os.path.join(out, run)], check=False,
                           stdout=subprocess.DEVNULL)
            svg = os.path.join(out, run, "loss.svg")
            if os.path.exists(svg):
                shutil.copy(svg, os.path.join(assets, f"{run}-loss.svg"))
    # The page's default is the hybrid, whose chunks the page shows (a gpt2 has none); a gpt2 run beside it is the
    # second bundled model, whichever scores better (both are in the report).
    best = "hybrid" if "hybrid" in rows else min(rows, key=lambda k: rows[k]["groups"]["site-packages"]["model"])

    # The bundle and its list.
    models = []
    for arch, r in sorted(rows.items(), key=lambda kv: kv[0] != best):
        dest = "default.safetensors" if arch == best else f"default-{arch}.safetensors"
        shutil.copy(os.path.join(out, f"{arch}.safetensors"), os.path.join(args.models, dest))
        s, g = r["summary"], r["groups"]
        about = (f"A {s['parameters'] / 1e6:.1f}M-parameter {arch} ({r['size'] / 2**20:.0f} MB) trained on this project's CPU "
                 f"for {r['total']['cpu_seconds'] / 3600:.1f} CPU-hours: {r['total']['tokens'] / 1e6:.0f}M tokens of "
                 f"{manifest['splits']['train']['packages']} permissively licensed Python packages and the standard library. "
                 f"{g['site-packages']['model']:.2f} bits per byte on packages it never saw (xz: {g['site-packages']['xz']:.2f}). "
                 + ("It shows how H-Net chunks code; " if arch != "gpt2" else
                    f"A plain decoder beside the bundled {best}, trained for about the same CPU time (it has no chunks to show); ")
                 + "for completions worth accepting load a pretrained model from the Hub "
                 "panel (Qwen2.5-Coder-0.5B with fill-in-the-middle, or SmolLM2-135M on a slow machine).")
        models.append({"arch": arch, "label": f"{arch} · {s['parameters'] / 1e6:.0f}M · Python packages (bundled)",
                       "url": f"public/models/{dest}", "about": about})
    with open(os.path.join(args.models, "models.json"), "w") as f:
        json.dump({"models": models}, f, indent=2)
        f.write("\n")

    train, valid = manifest["splits"]["train"], manifest["splits"]["valid"]
    std, site, excluded = package_families(manifest)
    cap = manifest["options"].get("max_package_bytes")
    capped = manifest["skipped_files"].get("over its package's share (--max-package-bytes)", 0)
    cap_text = (f"; a training package keeps at most {cap / 2**20:g} MiB of source, a sample spread over its files "
                f"({capped:,} files left out by that cap)" if cap else "")
    # The command as this run was started: the settings given in the environment, then the script.
    given = [f"{k}={os.environ[k]}" for k in ("BUDGET_S", "SWEEP_S", "LONG_STEPS", "LONG_WARMUP", "ANNEAL_STEPS", "GPT2", "PACKAGE_BYTES") if os.environ.get(k)]
    command = " ".join(given + [f"DEVICE={os.environ.get('DEVICE', 'cpu')}", "scripts/train-default.sh"])
    L = ["# The bundled model", "",
         f"Made by `{command}` on {machine()}; every number below is read from that run by "
         f"`scripts/experiments/default_model_report.py` (the recipe's log, paths elided: [`default-model/recipe.log`](default-model/recipe.log)). "
         f"Bundled: **{best}** as `public/models/default.safetensors`"
         + "".join(f", {a} as `public/models/default-{a}.safetensors`" for a in rows if a != best) + ".", ""]

    L += ["## Corpus", "",
          f"`hnet-gpt data prepare` of a Python environment's site-packages (one package per distribution; permissive "
          f"licences only) and the CPython standard library (one package per top-level module), split by package{cap_text}. "
          f"Tokenizer: **{choice['tokenizer']}** (chosen below). Training split: {train['tokens']:,} tokens, {train['bytes']:,} "
          f"bytes, {train['files']:,} files of {train['packages']} packages. Held out: {valid['tokens']:,} tokens of "
          f"{valid['packages']} packages never trained on. {len(excluded)} packages left out (licence or size).", "",
          "| package family | packages | tokens (train) | tokens (held out) |", "|---|---:|---:|---:|"]
    def fam(name, ps):
        t = sum(p["tokens"] for p in ps if p["split"] == "train")
        v = sum(p["tokens"] for p in ps if p["split"] == "valid")
        return f"| {name} | {len(ps)} | {t:,} | {v:,} |"
    L.append(fam("CPython standard library", std))
    for p in site[:12]:
        L.append(fam(f"{p['name']} {p['version']}", [p]))
    L.append(fam(f"{len(site) - 12} other site-packages distributions", site[12:]))
    for arch, r in rows.items():
        if r["anneal"]:
            a = r["anneal"]["corpus"]["splits"]["train"]
            L += ["", f"The anneal ({arch}, below) reads `{r['anneal']['corpus_name']}`: the same files, split and tokenizer, "
                  f"with every multi-line docstring of the training side cut to its summary line (`data prepare "
                  f"--docstrings summary`; held-out files as written): {a['tokens']:,} tokens, {a['bytes']:,} bytes "
                  f"({1 - a['bytes'] / train['bytes']:.0%} fewer bytes than the training split above)."]
            break
    L += ["", "## Choices at equal CPU time", "",
          "Each run below got the same CPU time (the recipe's `SWEEP_S`, converted to steps from a short probe of each "
          "configuration's tokens per CPU second), warmup-stable-decay, and is compared on the held-out packages' "
          "validation batches in bits per byte (which does not depend on the tokenizer).", "",
          "| run | arch | shape | tokenizer corpus | lr | params | steps | tokens | CPU s | bits/byte |",
          "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for s in sw:
        L.append(f"| {s['name']} | {s['arch']} | {s['shape']} | {s['corpus']} | {s['lr']} | {s['params'] / 1e6:.1f}M | "
                 f"{s['steps']} | {s['tokens']:,} | {fmt(s['cpu'], 0)} | {s['bpb']:.3f} |")
    L += ["", f"Chosen: tokenizer {choice['tokenizer']}, shape {choice['shape']}, learning rate {choice['lr']}.", ""]

    if len(rows) > 1:
        # The project's comparison, on this budget: the architectures side by side at equal CPU time (each one's
        # section below has the details).
        L += ["## The architectures at equal CPU time", "",
              "The same corpus, tokenizer, width, learning rate and schedule; the gpt2 has two more blocks in place of "
              "the hybrid's encoder, and "
              + ("its steps are the hybrid's CPU time, phase by phase, converted by its own short probe's rate "
                 "(so the CPU-hours below differ by a few percent: the long runs' rates are not the probes'). "
                 if os.environ.get("DEVICE", "cpu") == "cpu" else "each had the recipe's `BUDGET_S` of device time. ")
              + "Held-out whole files in bits per byte (lower is better).", "",
              "| arch | params | tokens | CPU-hours | site-packages | CPython stdlib | all | headers that parse | HumanEval pass@1 |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for arch, r in rows.items():
            g, ev = r["groups"], r["eval"]
            L.append(f"| {arch} | {r['summary']['parameters'] / 1e6:.1f}M | {r['total']['tokens']:,} | "
                     f"{r['total']['cpu_seconds'] / 3600:.2f} | {fmt(g['site-packages']['model'])} | "
                     f"{fmt(g['CPython stdlib']['model'])} | {fmt(g['all']['model'])} | "
                     f"{fmt((ev.get('header_syntax') or {}).get('rate'))} | {fmt((ev.get('humaneval') or {}).get('pass@1'))} |")
        L.append("")

    for arch, r in rows.items():
        s, g, c, an = r["summary"], r["groups"], r["curve"], r["anneal"]
        ev = r["eval"]
        L += [f"## The long run: {arch}", "",
              f"{s['parameters']:,} parameters; {s['steps']:,} steps, {s['tokens']:,} tokens seen "
              f"({s['tokens'] / train['tokens']:.2f} epochs of the training split); {s['cpu_seconds'] / 3600:.2f} CPU-hours "
              f"({s['seconds'] / 3600:.2f} h of wall clock, the machine shared with other work).", "",
              f"![validation loss]({'default-model/' + arch + '-loss.svg'})", "",
              "### Loss curve and what more CPU time buys", "",
              "Bits per byte on the held-out packages' validation batches (sequences cut from their files), the measure "
              "the choices above compare; whole files, scored below, come out lower.", ""]
        L += ["| step | tokens | CPU s | valid bits/byte |", "|---:|---:|---:|---:|"]
        L += [f"| {st} | {tk:,} | {cs:.0f} | {b:.3f} |" for st, tk, cs, b in c["points"]]
        if c.get("fit"):
            f = c["fit"]
            basis = ("its validations" if c["source"] == "validation" else
                     "its training loss (means of 100-step bins in bits per byte of the training split: the run validated "
                     "fewer than four times in that phase)")
            gap = c["decay_gain"]
            shift = (f"the final decay gained {gap:.3f} over the fit's value at the end" if c["source"] == "validation" else
                     f"the last validation sits {abs(gap):.3f} {'below' if gap >= 0 else 'above'} the fit's value at the end "
                     "(the held-out packages against the training split, after the decay)")
            L += ["", f"Fit on the stable phase (10–80% of steps), on {basis}: bits/byte ≈ {f['a']:.3f} + {f['b']:.3g} · "
                  f"(CPU s)^−{f['c']:.3f} (RMS error {f['rmse']:.3f}); {shift}, and the predictions keep that offset. "
                  "The long run with more CPU time, predicted on the same validation batches (an extrapolation of a few "
                  "points, so a rough guide):", ""]
            for k, secs, pred in c["predictions"]:
                L.append(f"- {k}× the CPU time ({secs / 3600:.1f} CPU-hours): ≈ {pred:.2f} bits per byte")
            L.append(f"- {TARGET_BPB} bits per byte on these batches: " + (f"≈ {c['to_target'] / 3600:.0f} CPU-hours" if c.get("to_target")
                     else "not reached by this curve at any CPU time (its asymptote is above it): it needs a larger model or a GPU"))
        if an:
            t, a = an["train"], an["summary"]
            L += ["", f"## The anneal: {arch}", "",
                  f"From the long run's best weights (`train --init-from`), {a['steps']:,} more steps on "
                  f"`{an['corpus_name']}` (docstrings cut to their summary line, see Corpus): learning rate {t['lr']:g} "
                  f"(half the long run's), {t['warmup_steps']} steps of warmup, warmup-stable-decay; a fresh optimizer; "
                  f"{a['tokens']:,} tokens, {a['cpu_seconds'] / 3600:.2f} CPU-hours. The bundled model is its best "
                  f"validation checkpoint. In all: {r['total']['tokens']:,} tokens, "
                  f"{r['total']['cpu_seconds'] / 3600:.2f} CPU-hours.", "",
                  f"![validation loss of the anneal]({'default-model/' + arch + '-anneal-loss.svg'})", "",
                  "| step | tokens | CPU s | valid bits/byte |", "|---:|---:|---:|---:|"]
            L += [f"| {st} | {tk:,} | {cs:.0f} | {b:.3f} |" for st, tk, cs, b in an["points"]]
            if an["before"]:
                b = an["before"]
                L += ["", "On the held-out whole files (below), before → after the anneal: " + "; ".join(
                    f"{name} {fmt(b[name]['model'])} → {fmt(g[name]['model'])}" for name in ("site-packages", "CPython stdlib", "all")) + "."]
        L += ["", f"## The bundled model: {arch}", "",
              f"In f16: {r['size']:,} bytes ({r['size'] / 2**20:.1f} MiB to download in the browser).", "",
              "### Held-out bits per byte", "",
              f"Whole files of the held-out packages (`hnet-gpt eval --whole-files`, files taken in turns across "
              f"packages up to the token cap), against xz and zstd compressing exactly the same files, each alone.", "",
              "| held out | packages | files | bytes | model | xz -9e | zstd -19 |", "|---|---:|---:|---:|---:|---:|---:|"]
        for name, x in g.items():
            L.append(f"| {name} | {x['packages']} | {x['files']} | {x['bytes']:,} | {fmt(x['model'])} | {fmt(x['xz'])} | {fmt(x['zstd'])} |")
        target = g["site-packages"]["model"]
        L += ["", f"Target: ≤ {TARGET_BPB} bits per byte on held-out packages. Reached: {fmt(target)} — "
              + ("**met**." if target is not None and target <= TARGET_BPB else "**not met**."), "",
              "<details><summary>Per package</summary>", "", "| package | files | bytes | model | xz | zstd |",
              "|---|---:|---:|---:|---:|---:|"]
        for p in r["packages"]:
            L.append(f"| {p['package']} | {p['files']} | {p['bytes']:,} | {fmt(bpb(p['nll'], p['bytes']))} | "
                     f"{fmt(p['xz'] / p['bytes'])} | {fmt(p['zstd'] / p['bytes'])} |")
        L += ["", "</details>"]
        he = ev.get("humaneval")
        hs = ev.get("header_syntax") or {}
        seed = ev.get("seed_five_prompts") or {}
        L += ["", "### Quality", "",
              f"- Header completions that parse (the model completes {hs.get('completions', 0)} held-out function headers; "
              f"a completion counts when it adds at least one complete line and those lines parse): "
              f"{hs.get('valid', 0)} of {hs.get('with_code', 0)} ({fmt(hs.get('rate'))}); "
              f"{hs.get('completions', 0) - hs.get('with_code', 0)} added no complete line.",
              f"- The seed's five prompts: syntax {fmt(seed.get('syntax'))}, pattern {fmt(seed.get('pattern'))}, "
              f"code tokens {fmt(seed.get('code_token'))}, overall {fmt(seed.get('overall'))}.",
              "- HumanEval pass@1: " + (f"{fmt(he.get('pass@1'))} over {he.get('problems')} problems × "
                                         f"{(he.get('samples') or 0) // max(he.get('problems') or 1, 1)} sample (sandboxed: {he.get('sandboxed')}); solved: {', '.join(he.get('solved') or []) or 'none'}."
                                         + (" Zero, as expected of a model this size trained this briefly." if not he.get('pass@1') else "")
                                         if he else "not run (no working sandbox on the machine that made this report)."),
              ]
        # Completions of the headers that have tests, run against them in the sandbox (the recipe's
        # `humaneval --problem-file scripts/experiments/simple-headers.jsonl`): does the code compute its function?
        tested = {mode: headers(out, arch, mode) for mode in ("greedy", "sampled")}
        if all(t is not None for t in tested.values()):
            L.append("- Simple headers with tests (`scripts/experiments/simple-headers.jsonl`: "
                     + ", ".join(f"`{p}`" for p in tested["greedy"]) + "; each completion below run against its tests "
                     "in the sandbox): " + "; ".join(
                         f"{mode} {sum(ok for ok, _ in t.values())} of {len(t)} compute their function"
                         + (" (" + ", ".join(f"`{p}`" for p, (ok, _) in t.items() if ok) + ")" if any(ok for ok, _ in t.values()) else "")
                         for mode, t in tested.items()) + ".")
        passk = os.path.join(out, f"{arch}-headers-pass.json")
        pass_samples = None  # the headers' samples at temperature 0.8 when they were run: how many, how many passed
        if os.path.exists(passk):
            pk = load(passk)
            per = pk["samples"] and len(pk["samples"]) // max(pk["problems"], 1)
            ks = ", ".join(f"{k} {fmt(pk[k])}" for k in ("pass@1", "pass@10", "pass@100") if k in pk)
            solved = sorted({x["task_id"] for x in pk["samples"] if x["passed"]})
            pass_samples = (len(pk["samples"]), len(solved))
            L.append(f"- The same headers, {per} samples each (`humaneval --problem-file … --samples {per}`, temperature "
                     f"{pk['temperature']}, cut at the Codex stop sequences): {ks}; solved at least once: "
                     f"{', '.join(f'`{t}`' for t in solved) or 'none'}.")
        # The second target: the greedy completions of two simple headers parse and are on topic. A program
        # judges "on topic" by the stricter test of computing the function; one that fails may still be on topic
        # (a reader can tell: they are quoted below).
        heads = ["def is_even(n):", "def fibonacci(n):"]
        judged = []
        for h in heads:
            smp = next((x for x in r["samples"] if x["prompt"] == h and x["mode"] == "greedy"), None)
            if smp is not None:
                try:
                    ast.parse(smp["completion"] if smp["completion"].startswith(h) else h + smp["completion"])
                    parses = True
                except SyntaxError:
                    parses = False
                judged.append((h, parses, (tested["greedy"] or {}).get(h)))
        if judged:
            def says(h, parses, test):
                if not parses:
                    return f"`{h}` does not parse"
                if test is None:
                    return f"`{h}` parses (not run: no sandbox)"
                return f"`{h}` parses and " + ("computes its function" if test[0] else f"fails its tests ({test[1]})")
            if all(parses and test and test[0] for _, parses, test in judged):
                verdict = "**met**"
            elif not all(parses for _, parses, _ in judged):
                verdict = "**not met**"
            elif any(test is None for _, _, test in judged):
                verdict = "both parse; whether they are on topic, read them below"
            else:
                verdict = ("**not met** as far as a program can judge: not every one computes its function (one "
                           "that does not may still be on topic, read them below)")
            # What more CPU time would give is a fit of a measure that moves; a pass rate of zero everywhere has none.
            never = (verdict.startswith("**not met**") and pass_samples is not None and pass_samples[1] == 0
                     and not any(ok for t in tested.values() if t for ok, _ in t.values()))
            L.append("- Target: completions of simple headers are code that parses and is on topic. Greedy: "
                     + "; ".join(says(*j) for j in judged) + f" — {verdict}."
                     + (f" What more CPU time would give for it is not predicted: no completion passes the headers' "
                        f"tests (not the greedy or sampled ones, nor any of the {pass_samples[0]} samples above), so "
                        f"there is no rate to fit; the fit in the loss curve's section predicts bits per byte only." if never else ""))
        if ev.get("chunks"):
            ch = ev["chunks"]
            L.append(f"- Chunks: {fmt(ch['mean_chunk_tokens'], 2)} tokens ({fmt(ch['mean_chunk_bytes'], 1)} bytes) on average; "
                     f"boundaries at line starts: precision {fmt(ch['line_starts']['precision'])} "
                     f"(chance {fmt(ch['line_starts']['chance_precision'])}).")
        L += ["", "### Completions, as they come out", "",
              "Greedy and sampled (temperature 0.8) continuations of 96 tokens at most, ended as the editor ends them (`generate`'s default block scope: before a blank line or a line indented less than the block, or after the first copy of a loop).", ""]
        for smp in r["samples"]:
            L += [f"`{smp['prompt']!r}` ({smp['mode']}):", "", "```python", smp["prompt"] + smp["completion"], "```", ""]
        L += ["### The seed's five prompts", "", "```json", json.dumps(seed, indent=1), "```", ""]
    with open(args.report, "w") as f:
        f.write("\n".join(L))
    with open(args.recipe) as f:
        log = sanitise(f.read(), out, corpus)
    with open(os.path.join(assets, "recipe.log"), "w") as f:
        f.write(log)
    print(f"wrote {args.report}; bundled {best}")


if __name__ == "__main__":
    main()
