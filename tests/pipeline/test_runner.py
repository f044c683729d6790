from __future__ import annotations

from pathlib import Path

import pytest

from posttrain.errors import InputError
from posttrain.pipeline.runner import Stage, run_stages


def _stages(calls: list[str], cfg: dict[str, int], fail_in: str | None = None) -> list[Stage]:
    def make(name: str):
        def run(stage_dir: Path) -> None:
            calls.append(name)
            if name == fail_in:
                (stage_dir / "half.partial").write_text("torn")
                raise RuntimeError("killed")
            (stage_dir / "out.txt").write_text(f"{name}:{cfg}")

        return run

    return [
        Stage("a", make("a"), {"x": cfg["x"]}),
        Stage("b", make("b"), {"y": cfg["y"]}, after=["a"]),
        Stage("c", make("c"), {}, after=["b"]),
    ]


def test_finished_stages_are_skipped_and_config_changes_rerun_downstream(tmp_path: Path):
    calls: list[str] = []
    run_stages(_stages(calls, {"x": 1, "y": 1}), tmp_path)
    assert calls == ["a", "b", "c"]
    calls.clear()
    outcomes = run_stages(_stages(calls, {"x": 1, "y": 1}), tmp_path)
    assert calls == [] and all(o.skipped for o in outcomes)
    run_stages(_stages(calls, {"x": 1, "y": 2}), tmp_path)
    assert calls == ["b", "c"]


def test_crash_then_rerun_resumes_at_the_failed_stage(tmp_path: Path):
    calls: list[str] = []
    with pytest.raises(RuntimeError):
        run_stages(_stages(calls, {"x": 1, "y": 1}, fail_in="b"), tmp_path)
    assert (tmp_path / "b" / "half.partial").exists()  # same key: the stage may resume from its partials
    calls.clear()
    run_stages(_stages(calls, {"x": 1, "y": 1}), tmp_path)
    assert calls == ["b", "c"]
    assert (tmp_path / "b" / "half.partial").exists()


def test_partials_of_another_config_are_wiped(tmp_path: Path):
    calls: list[str] = []
    with pytest.raises(RuntimeError):
        run_stages(_stages(calls, {"x": 1, "y": 1}, fail_in="b"), tmp_path)
    run_stages(_stages(calls, {"x": 1, "y": 5}), tmp_path)
    assert not (tmp_path / "b" / "half.partial").exists()


def test_from_stage_forces_it_and_later_ones(tmp_path: Path):
    calls: list[str] = []
    run_stages(_stages(calls, {"x": 1, "y": 1}), tmp_path)
    calls.clear()
    run_stages(_stages(calls, {"x": 1, "y": 1}), tmp_path, from_stage="b")
    assert calls == ["b", "c"]
    with pytest.raises(InputError, match="unknown stage 'z'"):
        run_stages(_stages(calls, {"x": 1, "y": 1}), tmp_path, from_stage="z")
