from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from posttrain.report.html import render_report, write_report

METRICS = {"prompt_level_strict": 0.2, "prompt_level_loose": 0.25, "inst_level_strict": 0.3, "inst_level_loose": 0.35}


def _summary() -> dict:
    after = {k: v + 0.05 for k, v in METRICS.items()}
    per = {"punctuation:no_comma": 0.4, "change_case:english_lowercase": 0.1}
    return {
        "name": "demo <run>",
        "model": "embedded",
        "total_seconds": 321.0,
        "headline": "prompt-level strict 20.0% -> 25.0%",
        "heldout_eval": {
            "before": {"metrics": METRICS, "per_instruction": per},
            "after": {"metrics": after, "per_instruction": {k: v + 0.1 for k, v in per.items()}},
        },
        "benchmarks": {
            "ifbench": {
                "before": {"metrics": METRICS, "per_instruction": {"format:emoji": 0.1}},
                "after": {"metrics": after, "per_instruction": {"format:emoji": 0.2}},
                "note": "Out of distribution: the training prompts used none of ifbench's 58 constraint types.",
            }
        },
        "pairs": {
            "method": "rs",
            "contrast": "high",
            "stats": {"pairs": 3, "prompts": 4, "skipped": {"no_contrast": 1}},
            "chosen_scores": [1.0, 0.5, 1.0],
            "rejected_scores": [0.0, 0.0, 0.5],
        },
        "training": [{"step": i, "loss": 0.69 - 0.01 * i, "reward_margin": 0.02 * i} for i in range(1, 9)],
        "judges": {
            "counts": {"ifeval": {"1": 5, "0": 7, "-1": 0}},
            "agreement": [{"a": "ifeval", "b": "ifeval_loose", "agreement": 0.9, "kappa": 0.8, "n": 12}],
        },
        "examples": [
            {
                "prompt": "Write <b>two</b> lines & no commas",
                "instructions": ["punctuation:no_comma"],
                "before": "a, b",
                "before_ok": [False],
                "after": "a b",
                "after_ok": [True],
            }
        ],
        "timings": [{"stage": "prompts", "seconds": 0.1}, {"stage": "sample", "seconds": 100.0}],
        "config": {"name": "demo"},
    }


def test_report_escapes_user_text_and_has_every_section():
    page = render_report(_summary())
    assert "<b>two</b>" not in page and "&lt;b&gt;two&lt;/b&gt;" in page
    for section in ("Held-out verifiable prompts", "IFBench (58 out-of-distribution", "Out of distribution: the training",
                    "Preference pairs", "Training", "Judges", "Examples", "Time per stage"):
        assert section in page
    assert page.count("<svg") == 7  # metrics and per-instruction (held-out, IFBench), scores, training, timings
    assert "<?xml" not in page and "+5.0 pts" in page


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHECK_SCRIPT = """<script>
window.addEventListener('load', () => {
  const svgs = [...document.querySelectorAll('svg')];
  const drawn = svgs.filter(s => { const b = s.getBBox(); return b.width > 50 && b.height > 50; }).length;
  document.title = 'svgs=' + svgs.length + ' drawn=' + drawn;
});
</script></body>"""


@pytest.mark.skipif(_chromium() is None, reason="Debian chromium not installed (scripts/install.sh --dev installs it)")
def test_report_loads_in_headless_chromium_without_console_errors(tmp_path: Path):
    report = write_report(_summary(), tmp_path / "report.html")
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text().replace("</body>", CHECK_SCRIPT))
    chromium = _chromium()
    assert chromium is not None
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
    ]  # fmt: skip
    proc = subprocess.run(
        [chromium, *flags, "--virtual-time-budget=3000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    title = re.search(r"<title>(.*?)</title>", proc.stdout)
    assert title is not None, proc.stderr[-2000:]
    assert title.group(1) == "svgs=7 drawn=7"
    console_errors = [line for line in proc.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line.upper()]
    assert console_errors == []
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1200,2400", report.as_uri()],
                   capture_output=True, timeout=120)  # fmt: skip
    assert shot.exists() and shot.stat().st_size > 10_000
