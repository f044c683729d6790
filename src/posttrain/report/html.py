"""A run's static HTML report: one self-contained file, plots as inline SVG (matplotlib), opens offline.

`write_report(summary, path)` takes a plain dict (see `posttrain.pipeline.quickstart.collect_summary`), so the
report can also be rebuilt from the JSON a run leaves behind (`runs/<name>/report/summary.json`).
"""

from __future__ import annotations

import html
import io
import json
from pathlib import Path
from typing import Any

from posttrain.atomic import atomic_write_text

METRICS = ("prompt_level_strict", "prompt_level_loose", "inst_level_strict", "inst_level_loose")

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;
line-height:1.45;padding:0 1rem}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.6rem 0}td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:left;
vertical-align:top}th{background:#f5f5f5}.num{text-align:right;font-variant-numeric:tabular-nums}
.up{color:#137333;font-weight:600}.down{color:#b3261e;font-weight:600}.muted{color:#666}
.plot{margin:.6rem 0}.plot svg{max-width:100%;height:auto}
pre{white-space:pre-wrap;background:#fafafa;border:1px solid #eee;padding:.5rem;max-height:18rem;overflow:auto;
margin:.2rem 0}.ok{color:#137333}.bad{color:#b3261e}details{margin:.5rem 0}
.headline{font-size:1.15rem;padding:.6rem .9rem;background:#f3f6fb;border-left:4px solid #3b6fd8}
"""


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and DOCTYPE: inline SVG must not carry them


def _figure(width: float = 7.5, height: float = 3.2) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9})
    return plt.subplots(figsize=(width, height))


def plot_metrics(before: dict[str, float], after: dict[str, float]) -> str:
    fig, ax = _figure(7.5, 2.8)
    xs = range(len(METRICS))
    ax.bar([x - 0.2 for x in xs], [before.get(m, 0) for m in METRICS], 0.4, label="before", color="#9aa5b1")
    ax.bar([x + 0.2 for x in xs], [after.get(m, 0) for m in METRICS], 0.4, label="after", color="#3b6fd8")
    ax.set_xticks(list(xs), [m.replace("_", " ") for m in METRICS])
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(frameon=False)
    return _svg(fig)


def plot_per_instruction(before: dict[str, float], after: dict[str, float]) -> str:
    names = sorted(set(before) | set(after))
    fig, ax = _figure(7.5, max(2.0, 0.28 * len(names) + 0.8))
    ys = range(len(names))
    ax.barh([y + 0.2 for y in ys], [before.get(n, 0) for n in names], 0.4, label="before", color="#9aa5b1")
    ax.barh([y - 0.2 for y in ys], [after.get(n, 0) for n in names], 0.4, label="after", color="#3b6fd8")
    ax.set_yticks(list(ys), names)
    ax.set_xlim(0, 1)
    ax.set_xlabel("pass rate")
    ax.invert_yaxis()
    ax.legend(frameon=False, loc="lower right")
    return _svg(fig)


def plot_scores(chosen: list[float], rejected: list[float]) -> str:
    fig, ax = _figure(7.5, 2.8)
    bins = [i / 10 for i in range(11)] if all(0 <= s <= 1 for s in chosen + rejected) else 20
    ax.hist(rejected, bins=bins, alpha=0.7, label=f"rejected (n={len(rejected)})", color="#d9822b")
    ax.hist(chosen, bins=bins, alpha=0.7, label=f"chosen (n={len(chosen)})", color="#3b6fd8")
    ax.set_xlabel("judge score (fraction of constraints met, or reward)")
    ax.set_ylabel("pairs")
    ax.legend(frameon=False)
    return _svg(fig)


def plot_training(steps: list[dict[str, Any]]) -> str:
    fig, ax = _figure(7.5, 2.8)
    xs = [s.get("step", i + 1) for i, s in enumerate(steps)]
    phases = list(dict.fromkeys(s.get("phase", "") for s in steps))
    colors = ("#3b6fd8", "#137333", "#8e44ad", "#b3261e", "#2c3e50", "#16a085")
    for i, phase in enumerate(phases):  # one line per training phase (round, SFT or DPO): each has its own loss
        part = [(x, s.get("loss")) for x, s in zip(xs, steps, strict=True) if s.get("phase", "") == phase]
        ax.plot([x for x, _ in part], [y for _, y in part], color=colors[i % len(colors)],
                label=f"{phase} loss" if phase else "loss")  # fmt: skip
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if len(phases) > 1:
        ax.legend(frameon=False, fontsize=7)
    if any(s.get("reward_margin") is not None for s in steps):
        twin = ax.twinx()
        twin.plot(xs, [s.get("reward_margin") for s in steps], color="#d9822b", label="reward margin")
        twin.set_ylabel("reward margin")
        fig.legend(frameon=False, loc="upper center", ncol=2)
    return _svg(fig)


def plot_timings(timings: list[dict[str, Any]]) -> str:
    fig, ax = _figure(7.5, 0.3 * len(timings) + 0.8)
    names = [t["stage"] for t in timings]
    ax.barh(names, [t["seconds"] for t in timings], color="#3b6fd8")
    ax.set_xlabel("seconds (this run's own work; cached stages show their first run)")
    ax.invert_yaxis()
    return _svg(fig)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _delta(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return ""
    d = 100 * (after - before)
    css = "up" if d > 0 else "down" if d < 0 else "muted"
    return f'<span class="{css}">{d:+.1f} pts</span>'


def _metrics_table(before: dict[str, float], after: dict[str, float]) -> str:
    rows = "".join(
        f"<tr><td>{m.replace('_', ' ')}</td><td class=num>{_pct(before.get(m))}</td>"
        f"<td class=num>{_pct(after.get(m))}</td><td class=num>{_delta(before.get(m), after.get(m))}</td></tr>"
        for m in METRICS
    )
    return f"<table><tr><th>metric</th><th>before</th><th>after</th><th>change</th></tr>{rows}</table>"


def _splits_table(splits: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Prompt-level strict and the answers cut off at the token budget, per split, before -> after."""
    head = ("<table><tr><th>prompts</th><th>n</th><th>prompt strict</th><th>prompt loose</th><th>inst strict</th>"
            "<th>inst loose</th><th>cut off at the budget</th></tr>")  # fmt: skip
    rows = []
    for name, ba in splits.items():
        b, a = ba["before"], ba["after"]
        cells = "".join(
            f"<td class=num>{_pct(b.get(k))} → {_pct(a.get(k))} {_delta(b.get(k), a.get(k))}</td>"
            for k in ("prompt_level_strict_acc", "prompt_level_loose_acc", "inst_level_strict_acc",
                      "inst_level_loose_acc")
        )  # fmt: skip
        rows.append(f"<tr><td>{html.escape(name)}</td><td class=num>{b.get('num_prompts')}</td>{cells}"
                    f"<td class=num>{b.get('cut_off')} → {a.get('cut_off')}</td></tr>")  # fmt: skip
    return head + "".join(rows) + "</table>"


def _rounds_section(rounds: list[dict[str, Any]]) -> str:
    parts = ["<h2>Held-out prompts after each round</h2>", "<table><tr><th>model</th>"]
    parts += [f"<th>{m.replace('_', ' ')}</th>" for m in METRICS]
    parts.append("</tr>")
    for row in rounds:
        cells = "".join(f"<td class=num>{_pct(row.get(m))}</td>" for m in METRICS)
        parts.append(f"<tr><td>{html.escape(row['model'])}</td>{cells}</tr>")
    parts.append("</table>")
    fig, ax = _figure(7.5, 2.6)
    for m in METRICS:
        ax.plot([r["model"] for r in rounds], [r.get(m) for r in rounds], marker="o", label=m.replace("_", " "))
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(frameon=False, fontsize=7)
    parts.append(f'<div class="plot">{_svg(fig)}</div>')
    return "".join(parts)


def _targets_section(targets: dict[str, dict[str, Any]]) -> str:
    parts = ["<h2>SFT targets</h2>", "<table><tr><th>round</th><th>prompts</th><th>sampled and verified</th>"
             "<th>repaired and verified</th><th>no target</th></tr>"]  # fmt: skip
    for name, st in targets.items():
        parts.append(f"<tr><td>{html.escape(name)}</td><td class=num>{st.get('prompts')}</td>"
                     f"<td class=num>{st.get('sampled')}</td><td class=num>{st.get('repaired')}</td>"
                     f"<td class=num>{st.get('without_target')}</td></tr>")  # fmt: skip
    parts.append("</table>")
    return "".join(parts)


def _eval_section(title: str, evaluation: dict[str, Any]) -> str:
    before, after = evaluation["before"], evaluation["after"]
    parts = [f"<h2>{html.escape(title)}</h2>"]
    if evaluation.get("note"):
        parts.append(f"<p class=muted>{html.escape(evaluation['note'])}</p>")
    parts.append(_metrics_table(before["metrics"], after["metrics"]))
    if evaluation.get("splits"):
        parts.append(_splits_table(evaluation["splits"]))
    parts.append(f'<div class="plot">{plot_metrics(before["metrics"], after["metrics"])}</div>')
    per_before, per_after = before.get("per_instruction", {}), after.get("per_instruction", {})
    if per_before or per_after:
        parts.append("<h3>Pass rate per constraint type</h3>")
        parts.append(f'<div class="plot">{plot_per_instruction(per_before, per_after)}</div>')
    return "".join(parts)


def _examples_section(examples: list[dict[str, Any]]) -> str:
    def verdicts(ids: list[str], oks: list[bool]) -> str:
        return " ".join(
            f'<span class="{"ok" if ok else "bad"}">{"✓" if ok else "✗"} {html.escape(i)}</span>'
            for i, ok in zip(ids, oks, strict=False)
        )

    parts = ["<h2>Examples from the held-out prompts</h2>"]
    for ex in examples:
        ids = ex.get("instructions", [])
        parts.append(
            f"<details><summary>{html.escape(ex['prompt'][:140])}</summary>"
            f"<p><b>prompt</b></p><pre>{html.escape(ex['prompt'])}</pre>"
            f"<p><b>before</b> {verdicts(ids, ex.get('before_ok', []))}</p><pre>{html.escape(ex['before'])}</pre>"
            f"<p><b>after</b> {verdicts(ids, ex.get('after_ok', []))}</p><pre>{html.escape(ex['after'])}</pre>"
            "</details>"
        )
    return "".join(parts)


def _judges_section(judges: dict[str, Any]) -> str:
    parts = ["<h2>Judges</h2>", "<table><tr><th>judge</th><th>satisfied</th><th>violated</th><th>failed</th></tr>"]
    for name, counts in judges.get("counts", {}).items():
        parts.append(
            f"<tr><td>{html.escape(name)}</td><td class=num>{counts.get('1', 0)}</td>"
            f"<td class=num>{counts.get('0', 0)}</td><td class=num>{counts.get('-1', 0)}</td></tr>"
        )
    parts.append("</table>")
    agreement = judges.get("agreement", [])
    if agreement:
        parts.append("<table><tr><th>judges</th><th>agreement</th><th>Cohen's κ</th><th>samples</th></tr>")
        for row in agreement:
            kappa = "–" if row.get("kappa") is None else f"{row['kappa']:.2f}"
            parts.append(
                f"<tr><td>{html.escape(row['a'])} vs {html.escape(row['b'])}</td>"
                f"<td class=num>{_pct(row['agreement'])}</td><td class=num>{kappa}</td>"
                f"<td class=num>{row['n']}</td></tr>"
            )
        parts.append("</table>")
    return "".join(parts)


BENCHMARK_TITLES = {"ifeval": "IFEval", "ifbench": "IFBench (58 out-of-distribution constraint types)"}


def render_report(summary: dict[str, Any]) -> str:
    name = html.escape(str(summary.get("name", "run")))
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>posttrain · {name}</title>"
        f"<meta name=viewport content='width=device-width, initial-scale=1'><style>{CSS}</style></head><body>",
        f"<h1>posttrain run: {name}</h1>",
        f"<p class=muted>model {html.escape(str(summary.get('model', '')))} · "
        f"total {summary.get('total_seconds', 0):.0f} s</p>",
    ]
    if summary.get("headline"):
        parts.append(f'<p class="headline">{html.escape(summary["headline"])}</p>')
    if summary.get("heldout_eval"):
        parts.append(_eval_section("Held-out verifiable prompts", summary["heldout_eval"]))
    for name, evaluation in (summary.get("benchmarks") or {}).items():
        parts.append(_eval_section(BENCHMARK_TITLES.get(name, name), evaluation))
    if summary.get("halt"):
        from posttrain.report.halt import halt_section  # HALT's trade-off table and plot

        parts.append(halt_section(summary["halt"]))
    if summary.get("rounds"):
        parts.append(_rounds_section(summary["rounds"]))
    if summary.get("targets"):
        parts.append(_targets_section(summary["targets"]))
    pairs = summary.get("pairs")
    if pairs:
        parts.append("<h2>Preference pairs</h2>")
        all_stats = pairs.get("all_stats") or {"rs": pairs.get("stats", {})}
        for method, stats in all_stats.items():
            if method == "repair":
                blocked = ", ".join(f"{k}: {v}" for k, v in stats.get("unrepairable", {}).items()) or "none"
                line = (f"repair: {stats.get('pairs', 0)} pairs from {stats.get('samples', 0)} samples "
                        f"({stats.get('already_satisfied', 0)} already satisfied, {stats.get('truncated', 0)} cut off "
                        f"by the token budget). Repairs that failed, by constraint: {blocked}.")  # fmt: skip
            else:
                skipped = ", ".join(f"{k}: {v}" for k, v in stats.get("skipped", {}).items()) or "none"
                line = (f"{method}: {stats.get('pairs', 0)} pairs from {stats.get('prompts', 0)} prompts "
                        f"(contrast {pairs.get('contrast', '')}). Skipped: {skipped}.")  # fmt: skip
            parts.append(f"<p>{html.escape(line)}</p>")
        if pairs.get("chosen_scores"):
            parts.append(f'<div class="plot">{plot_scores(pairs["chosen_scores"], pairs["rejected_scores"])}</div>')
    if summary.get("training"):
        parts.append("<h2>Training</h2>")
        parts.append(f'<div class="plot">{plot_training(summary["training"])}</div>')
    if summary.get("judges"):
        parts.append(_judges_section(summary["judges"]))
    if summary.get("examples"):
        parts.append(_examples_section(summary["examples"]))
    if summary.get("timings"):
        parts.append("<h2>Time per stage</h2>")
        parts.append(f'<div class="plot">{plot_timings(summary["timings"])}</div>')
    parts.append("<h2>Configuration</h2>")
    parts.append(f"<pre>{html.escape(json.dumps(summary.get('config', {}), indent=2))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(summary: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    atomic_write_text(path, render_report(summary))
    return path
