"""`posttrain sample` against plain HF `generate`, each a whole process, as a user meets them.

    python bench/sample_whole.py                      # both workloads, 3 timed runs of each side
    python bench/sample_whole.py --runs 1 --workload ifeval

Workloads (issue: "sample ≥ 2× plain generate whole process on both"):
- `short`: 64 short synthetic prompts × 4 samples × 64 new tokens, temperature 1;
- `ifeval`: IFEval's first 64 prompts × 1 sample × 64 new tokens, temperature 1 (bench/sample_speed.py's workload).

The peer is the script a transformers user writes (PEER below): load the model, apply the chat template, call
`generate` with `num_return_sequences`, decode, write one JSON line per completion; it runs the model in its default
dtype, fp32 (`--peer-dtype bfloat16` for a bf16 peer). posttrain is the installed `posttrain sample` command with
its defaults (`--dtype auto`: bf16 where the CPU computes it natively), the same sequences per `generate` call.
Both load the same HF-format copy of the embedded model, so neither pays for the GGUF conversion. Each side runs once
untimed (page cache), then `--runs` times alternately; each figure is spawn-to-exit wall time. Tokens are the
completion tokens each side produced, EOS included, so a side that stops early is not credited for padding.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IFEVAL = REPO.parent / "shared" / "data" / "ifeval" / "input_data.jsonl"
GOAL = 2.0

PEER = r'''
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
model_dir, prompts_path, out_path, n, new, batch, dtype = sys.argv[1:8]
n, new, batch = int(n), int(new), int(batch)
torch.manual_seed(0)
tok = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).eval()
prompts = [json.loads(line)["prompt"] for line in open(prompts_path, encoding="utf-8")]
per_call = max(1, batch // n)
with open(out_path, "w", encoding="utf-8") as out:
    for start in range(0, len(prompts), per_call):
        chunk = prompts[start : start + per_call]
        texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
                 for p in chunk]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            ids = model.generate(**enc, max_new_tokens=new, do_sample=True, temperature=1.0, top_p=1.0,
                                 num_return_sequences=n, pad_token_id=tok.pad_token_id or tok.eos_token_id)
        for i, row in enumerate(ids[:, enc.input_ids.shape[1]:].tolist()):
            ends = [j for j, t in enumerate(row) if t == tok.eos_token_id]
            row = row[: ends[0] + 1] if ends else row
            out.write(json.dumps({"prompt": chunk[i // n], "completion": tok.decode(row, skip_special_tokens=True),
                                  "tokens": len(row)}) + "\n")
'''

TOPICS = (
    "the sea", "a library", "winter", "a train ride", "coffee", "a city at night", "bees", "the moon", "a bicycle",
    "rain", "an old map", "a garden", "mountains", "a lighthouse", "friendship", "a market",
)
FORMS = ("Write one sentence about {}.", "Give two facts about {}.", "Describe {} in a haiku.", "Name three words for {}.")


def short_prompts() -> list[str]:
    return [form.format(topic) for form in FORMS for topic in TOPICS]


def ifeval_prompts(n: int) -> list[str]:
    if not IFEVAL.exists():
        raise SystemExit(f"{IFEVAL} is missing: the ifeval workload needs ../shared beside the checkout")
    return [json.loads(line)["prompt"] for line in IFEVAL.read_text(encoding="utf-8").splitlines()[:n]]


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} … failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def posttrain_tokens(path: Path) -> int:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return sum(r["completion_tokens"] + (r["finish_reason"] == "stop") for r in rows)


def peer_tokens(path: Path) -> int:
    return sum(json.loads(line)["tokens"] for line in path.read_text(encoding="utf-8").splitlines())


def run_workload(name: str, prompts: list[str], n: int, args: argparse.Namespace, work: Path) -> float:
    from posttrain.models.embedded import embedded_model_dir

    model_dir = str(embedded_model_dir())
    prompts_path = work / f"{name}.jsonl"
    prompts_path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts), encoding="utf-8")
    peer_script = work / "peer.py"
    peer_script.write_text(PEER, encoding="utf-8")
    ours_out, peer_out = work / f"{name}.posttrain.jsonl", work / f"{name}.peer.jsonl"
    launcher = shutil.which("posttrain")
    ours = [launcher] if launcher else [sys.executable, "-m", "posttrain"]
    ours += ["sample", "--prompts", str(prompts_path), "--out", str(ours_out), "--model", model_dir,
             "--n", str(n), "--max-new-tokens", str(args.max_new_tokens), "--temperature", "1.0",
             "--batch-size", str(max(1, args.batch // n)), "--threads", str(args.threads)]  # fmt: skip
    peer = [sys.executable, str(peer_script), model_dir, str(prompts_path), str(peer_out), str(n),
            str(args.max_new_tokens), str(args.batch), args.peer_dtype]  # fmt: skip

    def ours_once() -> float:
        ours_out.unlink(missing_ok=True)  # else the command resumes a finished file and samples nothing
        return timed(ours)

    peer_env_threads = ["env", f"OMP_NUM_THREADS={args.threads}"]
    peer = peer_env_threads + peer
    ours_once(), timed(peer)  # untimed: page cache, the embedded copy, numba's cache
    ours_s, peer_s = [], []
    for _ in range(args.runs):
        peer_s.append(timed(peer))
        ours_s.append(ours_once())
    ours_tok, peer_tok = posttrain_tokens(ours_out), peer_tokens(peer_out)
    ours_rate, peer_rate = ours_tok / statistics.median(ours_s), peer_tok / statistics.median(peer_s)
    ratio = ours_rate / peer_rate
    print(f"[{name}] {len(prompts)} prompts × {n} samples × ≤{args.max_new_tokens} tokens, temperature 1, "
          f"{args.batch} sequences per generate call, {args.threads} threads, peer {args.peer_dtype}")  # fmt: skip
    print(f"  plain HF generate : {peer_tok:6d} tokens, median {statistics.median(peer_s):6.2f} s "
          f"(runs {', '.join(f'{s:.2f}' for s in peer_s)}) = {peer_rate:6.1f} tok/s")  # fmt: skip
    print(f"  posttrain sample  : {ours_tok:6d} tokens, median {statistics.median(ours_s):6.2f} s "
          f"(runs {', '.join(f'{s:.2f}' for s in ours_s)}) = {ours_rate:6.1f} tok/s")  # fmt: skip
    print(f"  ratio (posttrain / plain), whole process: {ratio:.2f}x (goal ≥ {GOAL:.0f}x: "
          f"{'met' if ratio >= GOAL else 'not met'})")  # fmt: skip
    return ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", choices=["short", "ifeval", "both"], default="both")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32, help="sequences per generate call, both sides")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peer-dtype", choices=["float32", "bfloat16"], default="float32")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sample_whole_") as tmp:
        if args.workload in ("short", "both"):
            run_workload("short", short_prompts(), 4, args, Path(tmp))
        if args.workload in ("ifeval", "both"):
            run_workload("ifeval", ifeval_prompts(64), 1, args, Path(tmp))


if __name__ == "__main__":
    main()
