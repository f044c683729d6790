from __future__ import annotations

from posttrain.report.halt import halt_section, plot_tradeoff
from posttrain.report.html import render_report

ROWS = [
    {"model": "untrained", "threshold": None, "correctness": 0.4, "completeness": 0.3, "relative_completeness": 0.8,
     "f1": 0.53, "abstention_rate": 0.0, "partial_abstention_rate": 0.0, "graded": 32, "grader_failed": 0},
    {"model": "standard SFT", "threshold": None, "correctness": 0.5, "completeness": 0.4, "relative_completeness": 1.0,
     "f1": 0.67, "abstention_rate": 0.0, "partial_abstention_rate": 0.0, "graded": 32, "grader_failed": 0},
    {"model": "HALT t=0.5", "threshold": 0.5, "correctness": 0.8, "completeness": 0.2, "relative_completeness": 0.5,
     "f1": 0.62, "abstention_rate": 0.3, "partial_abstention_rate": 0.4, "graded": 31, "grader_failed": 1},
    {"model": "HALT t=1", "threshold": 1.0, "correctness": None, "completeness": 0.0, "relative_completeness": None,
     "f1": None, "abstention_rate": 1.0, "partial_abstention_rate": 0.0, "graded": 32, "grader_failed": 0},
]  # fmt: skip


def test_the_tradeoff_plot_and_table_tolerate_missing_values():
    svg = plot_tradeoff(ROWS)
    assert svg.startswith("<svg") and "t=0.5" in svg and "standard SFT" in svg
    section = halt_section({"rows": ROWS, "domain": "math", "heldout_problems": 32, "builds": {
        "0.5": {"examples": 64, "kept_whole": 5, "cut": 20, "abstained": 39, "fragments": 200,
                "fragments_correct": 90, "grader_failed": 0}}})  # fmt: skip
    assert "HALT t=1" in section and "80.0%" in section and "–" in section and "90 / 200" in section


def test_the_run_report_includes_the_halt_section_when_present():
    page = render_report({"name": "halt", "halt": {"rows": ROWS}})
    assert "HALT: correctness against completeness" in page
    assert "HALT: correctness" not in render_report({"name": "plain"})
