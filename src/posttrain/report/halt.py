"""The HALT part of a report: correctness against completeness, one point per model (HALT's trade-off curve),
and the table behind it (`posttrain.halt.recipe` writes the data: `report/results.json`)."""

from __future__ import annotations

import html
from typing import Any

from posttrain.report.html import _figure, _pct, _svg


def _completeness(row: dict[str, Any]) -> tuple[float | None, str]:
    """Completeness relative to standard SFT when measured, else the absolute one."""
    if row.get("relative_completeness") is not None:
        return row["relative_completeness"], "relative to standard SFT"
    return row.get("completeness"), "absolute"


def plot_tradeoff(rows: list[dict[str, Any]]) -> str:
    fig, ax = _figure(6.0, 3.6)
    halt = [(r, *_completeness(r)) for r in rows if r.get("threshold") is not None]
    points = [
        (x, r.get("correctness")) for r, x, _ in halt if x is not None and r.get("correctness") is not None
    ]
    if points:
        ax.plot([x for x, _ in points], [y for _, y in points], color="#3b6fd8", marker="o", label="HALT")
    for r, x, _ in halt:
        if x is not None and r.get("correctness") is not None:
            ax.annotate(
                f"t={r['threshold']:g}", (x, r["correctness"]), textcoords="offset points", xytext=(5, 4)
            )
    styles = {"standard SFT": ("#d9822b", "s"), "untrained": ("#9aa5b1", "^")}
    for r in rows:
        x, _ = _completeness(r)
        if r.get("threshold") is None and x is not None and r.get("correctness") is not None:
            color, shape = styles.get(r["model"], ("#2c3e50", "D"))
            ax.scatter([x], [r["correctness"]], color=color, marker=shape, label=r["model"], zorder=3)
    kinds = {_completeness(r)[1] for r in rows if _completeness(r)[0] is not None}
    ax.set_xlabel("completeness" + (f" ({kinds.pop()})" if len(kinds) == 1 else ""))
    ax.set_ylabel("fragment correctness")
    ax.set_ylim(0, 1.05)
    ax.set_xlim(left=0)
    if ax.get_legend_handles_labels()[0]:  # a run whose models all abstained has no point to label
        ax.legend(frameon=False, fontsize=7)
    return _svg(fig)


def _cell(value: Any) -> str:
    return _pct(value) if isinstance(value, int | float) or value is None else html.escape(str(value))


def halt_section(results: dict[str, Any]) -> str:
    rows = results.get("rows", [])
    parts = [
        "<h2>HALT: correctness against completeness</h2>",
        f"<p class=muted>{results.get('heldout_problems')} held-out {html.escape(str(results.get('domain', '')))} "
        f"problems, greedy; {results.get('train_problems')} training problems × {results.get('samples_per_problem')} "
        f"answers; standard SFT targets: {html.escape(str(results.get('baseline', '')))}.</p>",
        "<table><tr><th>model</th><th>correctness</th><th>completeness</th><th>relative completeness</th>"
        "<th>F1</th><th>abstained</th><th>partly abstained</th><th>graded</th><th>grader failed</th></tr>",
    ]
    for r in rows:
        cells = "".join(f"<td class=num>{_cell(r.get(k))}</td>" for k in
                        ("correctness", "completeness", "relative_completeness", "f1", "abstention_rate",
                         "partial_abstention_rate"))  # fmt: skip
        parts.append(f"<tr><td>{html.escape(str(r.get('model')))}</td>{cells}<td class=num>{r.get('graded')}</td>"
                     f"<td class=num>{r.get('grader_failed')}</td></tr>")  # fmt: skip
    parts.append("</table>")
    if rows:
        parts.append(f'<div class="plot">{plot_tradeoff(rows)}</div>')
    builds = results.get("builds") or {}
    if builds:
        parts.append("<h3>HALT targets per threshold</h3><table><tr><th>threshold</th><th>examples</th>"
                     "<th>kept whole</th><th>cut + marker</th><th>abstained</th><th>fragments correct</th>"
                     "<th>grader failed</th></tr>")  # fmt: skip
        for t, st in builds.items():
            frac = f"{st.get('fragments_correct')} / {st.get('fragments')}"
            parts.append(f"<tr><td>{html.escape(t)}</td><td class=num>{st.get('examples')}</td>"
                         f"<td class=num>{st.get('kept_whole')}</td><td class=num>{st.get('cut')}</td>"
                         f"<td class=num>{st.get('abstained')}</td><td class=num>{frac}</td>"
                         f"<td class=num>{st.get('grader_failed')}</td></tr>")  # fmt: skip
        parts.append("</table>")
    return "".join(parts)
