#!/usr/bin/env bash
# The bundled model's recipe: public/models/default.safetensors and docs/results/default-model.md.
#
#   DEVICE=cpu  scripts/train-default.sh   # hours in the background on this CPU (BUDGET_S 7200, SWEEP_S 480)
#   DEVICE=cuda BIN=target/dist/hnet-gpt scripts/train-default.sh   # one 10-minute GPU window (BUDGET_S 360)
#
# Resumable: every phase leaves its result in $OUT and is skipped when run again; a stopped training run continues
# with `train --resume`. Run it niced, with $OUT outside the clone (its runs are GBs of checkpoints):
#   nice -n 19 env OUT=/work/recipe BIN=/work/recipe/hnet-gpt scripts/train-default.sh &
#
#  1. Corpus: the site-packages of this machine's Python (each distribution a package; permissive licences only)
#     and the CPython standard library (each top-level module a package), split by package; a training package keeps
#     at most PACKAGE_BYTES of source (8 MiB: one large package, sympy here, would otherwise set the style of what
#     the model writes). Prepared twice: with GPT-2's BPE, and with a byte-level BPE of $BPE_VOCAB entries trained
#     on the training split.
#  2. Choices at equal compute (each sweep run gets SWEEP_S seconds of this machine, idle): the tokenizer (GPT-2's vs
#     ours), the hybrid's shape (preset `small` vs a narrower one between `tiny` and `small`), the learning rate.
#     On the CPU, equal compute is equal CPU time (a probe measures each configuration's tokens per CPU second), so
#     other work on the machine slows a run without changing its budget. Compared on the held-out packages' bits
#     per byte (tokenizer-independent).
#  3. The long run: the chosen hybrid for BUDGET_S (or LONG_STEPS steps, LONG_WARMUP of them warmup),
#     warmup-stable-decay. Then the anneal: ANNEAL_STEPS more steps from the long run's best weights on the same
#     corpus with each training file's docstrings cut to their summary line (`data prepare --docstrings summary`;
#     the held-out files stay as written), at half the learning rate, warmup-stable-decay again: library code
#     documents every function at length, and a small model that has only read it answers `def f(x):` with pages
#     of docstring. Converted to f16 with a context of SEQ positions (those it trained on).
#     With GPT2=1, a gpt2 of the same width (two more blocks in place of the H-Net stages) gets the same budget — on
#     the CPU the hybrid's own CPU time, long run and anneal each — and is bundled beside it.
#  4. Evaluation (scripts/experiments/default_model_report.py writes the report and updates public/models/).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-hnet-gpt}
DEVICE=${DEVICE:-cuda}
if [ "$DEVICE" = cpu ]; then
  BUDGET_S=${BUDGET_S:-7200} SWEEP_S=${SWEEP_S:-480} BATCH=${BATCH:-16} SEQ=${SEQ:-256} HUMANEVAL=${HUMANEVAL:-164}
  ANNEAL_STEPS=${ANNEAL_STEPS:-1200}
else
  BUDGET_S=${BUDGET_S:-360} SWEEP_S=${SWEEP_S:-20} BATCH=${BATCH:-32} SEQ=${SEQ:-512} HUMANEVAL=${HUMANEVAL:-164}
  ANNEAL_STEPS=${ANNEAL_STEPS:-400}
fi
BPE_VOCAB=${BPE_VOCAB:-16384}
PACKAGE_BYTES=${PACKAGE_BYTES:-8388608} # most source bytes per training package (0: all)
LR=${LR:-2e-3}               # the sweep's first rate; LRS are tried around the winner
LRS=${LRS:-"1e-3 4e-3"}
GPT2=${GPT2:-0}
OUT=${OUT:-runs/default}
SITE=${SITE:-$(python3 -c 'import site; print(site.getsitepackages()[0])')}
STDLIB=${STDLIB:-$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')}
EVAL_TOKENS=${EVAL_TOKENS:-400000}
REPORT=${REPORT:-docs/results/default-model.md}
MODELS=${MODELS:-public/models}
CORES=$(nproc)
mkdir -p "$OUT"
log="$OUT/recipe.log"
exec > >(tee -a "$log") 2>&1
echo "# $(date -u +%FT%TZ) BIN=$BIN DEVICE=$DEVICE BUDGET_S=$BUDGET_S SWEEP_S=$SWEEP_S ANNEAL_STEPS=$ANNEAL_STEPS BATCH=$BATCH SEQ=$SEQ BPE_VOCAB=$BPE_VOCAB PACKAGE_BYTES=$PACKAGE_BYTES cores=$CORES"
"$BIN" --version
py() { python3 - "$@"; }

echo "==> 1. corpora"
prepare() { # NAME EXTRA-FLAGS…
  local name=$1; shift
  local cap=()
  [ "$PACKAGE_BYTES" = 0 ] || cap=(--max-package-bytes "$PACKAGE_BYTES")
  [ -d "$OUT/$name" ] || "$BIN" data prepare --data "$SITE" --data "$STDLIB" --out "$OUT/$name" "${cap[@]}" --quiet "$@"
}
prepare corpus-gpt2
prepare corpus-bpe --tokenizer-vocab "$BPE_VOCAB"
# The anneal's corpora: the same files and split, the same tokenizers, the training side's docstrings cut.
prepare corpus-gpt2-summary --docstrings summary
prepare corpus-bpe-summary --tokenizer "$OUT/corpus-bpe/tokenizer.json" --docstrings summary

# Model configs: the preset `small` and a narrower hybrid between `tiny` and `small`.
"$BIN" init --arch hybrid --preset small --out "$OUT/small-init.safetensors" >/dev/null
"$BIN" info --checkpoint "$OUT/small-init.safetensors" --json > "$OUT/small-init.json"
py "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
small = json.load(open(f"{out}/small-init.json"))["config"]
json.dump(small, open(f"{out}/shape-small.json", "w"), indent=1)
mid = json.loads(json.dumps(small))
mid["gpt2"].update(n_embd=192, n_head=6)
for part in ("encoder", "main", "decoder"):
    mid["hnet"][part].update(d_model=192, n_head=6)
for part in ("encoder", "main"):
    mid["hnet"][part]["d_intermediate"] = 384
json.dump(mid, open(f"{out}/shape-mid.json", "w"), indent=1)
PY
rm -f "$OUT/small-init.safetensors" "$OUT/small-init.json"

# Training: ARCH SHAPE CORPUS LR STEPS RUN [WARMUP]; a run that exists and is unfinished is resumed. SHAPE is a
# shape-*.json, or `from:CHECKPOINT` to start from that checkpoint's weights.
train() {
  if [ -f "$6/summary.json" ]; then return; fi
  if [ -f "$6/config.json" ]; then
    "$BIN" train --resume "$6" --data "$OUT/$3" --device "$DEVICE" --quiet
  else
    local model=(--model-config "$OUT/shape-$2.json")
    [ "${2#from:}" = "$2" ] || model=(--init-from "${2#from:}")
    "$BIN" train --arch "$1" "${model[@]}" --lr "$4" --steps "$5" --warmup "${7:-$(( $5 / 20 + 1 ))}" \
      --schedule wsd --eval-every $(( $5 / 8 + 1 )) --eval-batches 16 --batch-size "$BATCH" --seq-len "$SEQ" \
      --data "$OUT/$3" --device "$DEVICE" --out "$6" --quiet
  fi
}

# Steps that BUDGET seconds of this machine buy a configuration: on the CPU from its tokens per CPU second (a probe
# of a few steps; the machine's cores are the seconds' worth), on a GPU from its wall-clock tokens per second.
steps_for() { # ARCH SHAPE CORPUS BUDGET
  local probe="$OUT/probe-$1-$2-$3"
  if [ ! -f "$probe/summary.json" ]; then
    rm -rf "$probe"
    "$BIN" train --arch "$1" --model-config "$OUT/shape-$2.json" --lr "$LR" --steps 12 --warmup 1 --eval-every 1000 \
      --eval-batches 1 --batch-size "$BATCH" --seq-len "$SEQ" --data "$OUT/$3" --device "$DEVICE" --out "$probe" --quiet
  fi
  py "$probe/metrics.jsonl" "$4" "$DEVICE" "$CORES" "$BATCH" "$SEQ" <<'PY'
import json, statistics, sys
path, budget, device, cores, batch, seq = sys.argv[1], float(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
rows = [json.loads(l) for l in open(path) if '"train"' in l][3:]
if device == "cpu":
    rate = (rows[-1]["tokens"] - rows[0]["tokens"]) / (rows[-1]["cpu_seconds"] - rows[0]["cpu_seconds"]) * cores
else:
    rate = statistics.median(r["tokens_per_s"] for r in rows)
print(max(1, int(budget * rate / (batch * seq))))
PY
}

# The CPU time a finished run took, as seconds of this machine (its CPU seconds over the cores): the budget that
# gives another configuration the same CPU time.
machine_seconds() { # RUN
  py "$1/summary.json" "$CORES" <<<'import json,sys; print(json.load(open(sys.argv[1]))["cpu_seconds"] / int(sys.argv[2]))'
}

bpb() { # RUN: the last validation bits per byte
  py "$1/metrics.jsonl" <<'PY'
import json, sys
print([json.loads(l) for l in open(sys.argv[1]) if '"valid"' in l][-1]["bits_per_byte"])
PY
}
better() { py "$1" "$2" <<<'import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)'; }

echo "==> 2. choices at equal compute ($SWEEP_S s each)"
sweep() { # NAME ARCH SHAPE CORPUS LR
  local steps; steps=$(steps_for "$2" "$3" "$4" "$SWEEP_S")
  train "$2" "$3" "$4" "$5" "$steps" "$OUT/sweep/$1"
  echo "sweep $1: $2 $3 $4 lr $5, $steps steps: $(bpb "$OUT/sweep/$1") bits/byte"
}
sweep tok-gpt2 hybrid small corpus-gpt2 "$LR"
sweep tok-bpe hybrid small corpus-bpe "$LR"
corpus=corpus-bpe tok=bpe
better "$(bpb "$OUT/sweep/tok-gpt2")" "$(bpb "$OUT/sweep/tok-bpe")" && corpus=corpus-gpt2 tok=gpt2
sweep "shape-mid-$tok" hybrid mid "$corpus" "$LR"
shape=small best="$OUT/sweep/tok-$tok"
better "$(bpb "$OUT/sweep/shape-mid-$tok")" "$(bpb "$best")" && shape=mid best="$OUT/sweep/shape-mid-$tok"
lr=$LR
for r in $LRS; do
  sweep "lr-$r-$shape-$tok" hybrid "$shape" "$corpus" "$r"
  better "$(bpb "$OUT/sweep/lr-$r-$shape-$tok")" "$(bpb "$best")" && lr=$r best="$OUT/sweep/lr-$r-$shape-$tok"
done
echo "chosen: tokenizer $tok ($corpus), shape $shape, learning rate $lr"
printf '{"tokenizer": "%s", "corpus": "%s", "shape": "%s", "lr": %s}\n' "$tok" "$corpus" "$shape" "$lr" > "$OUT/choice.json"

echo "==> 3. the long run ($BUDGET_S s)"
archs=(hybrid)
[ "$GPT2" = 1 ] && archs+=(gpt2)
for arch in "${archs[@]}"; do
  if [ "$arch" = gpt2 ]; then
    # The same width and depth in blocks as the chosen hybrid, as a plain decoder.
    py "$OUT/shape-$shape.json" "$OUT/shape-gpt2.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["arch"] = "gpt2"; c.pop("hnet"); c["gpt2"]["n_layer"] += 2
json.dump(c, open(sys.argv[2], "w"), indent=1)
PY
    s=gpt2
    if [ "$DEVICE" = cpu ]; then
      # The hybrid's CPU time, phase by phase (however its length was given: BUDGET_S or LONG_STEPS), with the
      # same share of warmup.
      steps=$(steps_for gpt2 gpt2 "$corpus" "$(machine_seconds "$OUT/hybrid")")
      warmup=$(py "$OUT/hybrid/config.json" "$steps" <<<'import json,sys; t = json.load(open(sys.argv[1]))["train"]; print(max(1, round(int(sys.argv[2]) * t["warmup_steps"] / t["steps"])))')
      anneal_steps=0
      [ "$ANNEAL_STEPS" -gt 0 ] && anneal_steps=$(steps_for gpt2 gpt2 "$corpus" "$(machine_seconds "$OUT/hybrid-anneal")")
    else
      steps=$(steps_for gpt2 gpt2 "$corpus" "$BUDGET_S") warmup= anneal_steps=$ANNEAL_STEPS
    fi
  else
    s=$shape
    steps=${LONG_STEPS:-$(steps_for "$arch" "$s" "$corpus" "$BUDGET_S")} warmup=${LONG_WARMUP:-} anneal_steps=$ANNEAL_STEPS
  fi
  echo "$arch: $steps steps of $BATCH × $SEQ tokens"
  train "$arch" "$s" "$corpus" "$lr" "$steps" "$OUT/$arch" $warmup
  last="$OUT/$arch"
  if [ "$anneal_steps" -gt 0 ]; then
    echo "$arch anneal: $anneal_steps steps on $corpus-summary"
    train "$arch" "from:$OUT/$arch/checkpoints/best/model.safetensors" "$corpus-summary" \
      "$(py "$lr" <<<'import sys; print(float(sys.argv[1]) / 2)')" "$anneal_steps" "$OUT/$arch-anneal"
    last="$OUT/$arch-anneal"
    # The long run's weights too, to measure what the anneal changed on the held-out files.
    [ -f "$OUT/$arch-long.safetensors" ] || "$BIN" convert --checkpoint "$OUT/$arch/checkpoints/best/model.safetensors" \
      --out "$OUT/$arch-long.safetensors" --half --context "$SEQ"
  fi
  [ -f "$OUT/$arch.safetensors" ] || "$BIN" convert --checkpoint "$last/checkpoints/best/model.safetensors" --out "$OUT/$arch.safetensors" --half --context "$SEQ"
done

echo "==> 4. evaluation"
sandbox=()
if [ "$HUMANEVAL" -eq 0 ]; then
  echo "note: HUMANEVAL=0: HumanEval is left out of this report"
elif "$BIN" humaneval --canonical --problems 1 > /dev/null 2>&1; then
  sandbox=(--humaneval "$HUMANEVAL" --samples 1)
else
  echo "note: no working sandbox here (bubblewrap, user namespaces): HumanEval is left out of this report"
fi
HEADERS=scripts/experiments/simple-headers.jsonl # the prompts below that have tests, with them
HEADER_SAMPLES=${HEADER_SAMPLES:-20}
prompts=("def is_even(n):" "def fibonacci(n):" "def is_prime(n):" "def reverse_string(s):" "class Stack:"
  "import os\n\ndef list_files(path):" "def quicksort(arr):" "def read_json(path):" "def factorial(n):"
  "for i in range(10):" "def binary_search(items, target):" "if __name__ == \"__main__\":")
for arch in "${archs[@]}"; do
  ckpt="$OUT/$arch.safetensors"
  [ -f "$OUT/$arch-eval.json" ] || "$BIN" eval --checkpoint "$ckpt" --device "$DEVICE" --data "$OUT/$corpus" \
    --max-tokens "$EVAL_TOKENS" --headers 50 "${sandbox[@]}" --json > "$OUT/$arch-eval.json"
  for model in "$arch" "$arch-long"; do
    [ -f "$OUT/$model.safetensors" ] && [ ! -f "$OUT/$model-files.json" ] && "$BIN" eval --checkpoint "$OUT/$model.safetensors" \
      --device "$DEVICE" --data "$OUT/$corpus" --whole-files --max-tokens "$EVAL_TOKENS" --headers 0 --json > "$OUT/$model-files.json"
  done
  : > "$OUT/$arch-samples.jsonl"
  for p in "${prompts[@]}"; do
    prompt=$(printf '%b' "$p")
    for mode in greedy sampled; do
      t=0.0; [ $mode = sampled ] && t=0.8
      text=$("$BIN" generate --checkpoint "$ckpt" --device "$DEVICE" --prompt "$prompt" --max-new-tokens 96 --temperature $t --scope block)
      py "$prompt" "$mode" "$text" <<<'import json,sys; print(json.dumps({"prompt": sys.argv[1], "mode": sys.argv[2], "completion": sys.argv[3]}))' >> "$OUT/$arch-samples.jsonl"
    done
  done
  # Do the completions of the headers that have tests compute their function? The same completions, run against
  # scripts/experiments/simple-headers.jsonl's tests in the sandbox.
  if [ ${#sandbox[@]} -gt 0 ]; then
    for mode in greedy sampled; do
      py "$HEADERS" "$OUT/$arch-samples.jsonl" "$mode" > "$OUT/$arch-headers-$mode.jsonl" <<<'
import json, sys
problems = {p["prompt"]: p["task_id"] for p in map(json.loads, open(sys.argv[1])) }
for s in map(json.loads, open(sys.argv[2])):
    if s["mode"] == sys.argv[3] and s["prompt"] in problems:
        print(json.dumps({"task_id": problems[s["prompt"]], "completion": s["completion"]}))'
      "$BIN" humaneval --problem-file "$HEADERS" --completions "$OUT/$arch-headers-$mode.jsonl" --json > "$OUT/$arch-headers-$mode.json"
    done
    # And pass@k over more samples (temperature 0.8): a header solved now and then shows where greedy does not.
    [ -f "$OUT/$arch-headers-pass.json" ] || "$BIN" humaneval --problem-file "$HEADERS" --checkpoint "$ckpt" \
      --device "$DEVICE" --samples "$HEADER_SAMPLES" --json > "$OUT/$arch-headers-pass.json"
  fi
done
python3 scripts/experiments/default_model_report.py --out "$OUT" --recipe "$log" --report "$REPORT" --models "$MODELS" --archs "${archs[@]}"
