"""`posttrain select`: pick a diverse subset of SFT data (SAE-GreedSelect, SAE-SimScale, baselines) with a report;
`posttrain select train-sae` / `features` build and cache the pieces alone; `replicate` runs the SFT comparison."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from posttrain.errors import InputError


def _config(config: Path | None, overrides: list[str], flags: dict[str, Any]) -> Any:
    from posttrain import config as config_lib
    from posttrain.select.run import SelectConfig

    data: dict[str, Any] = config_lib.read_yaml(config) if config else {}
    for text in overrides:
        config_lib.apply_override(data, *config_lib.parse_override(text))
    for dotted, value in flags.items():
        if value is not None:
            config_lib.apply_override(data, dotted.split("."), value)
    return config_lib.build(SelectConfig, data, config)


_CONFIG = typer.Option(None, "--config", help="YAML with SelectConfig keys (features, sae, selector, ...).")
_SET = typer.Option([], "--set", help="Config override key=value, e.g. sae.k=64 (repeatable).")
_SOURCE = typer.Option(None, "--source", help="Activations: lm (embedded SmolLM2 residual stream) or minilm.")
_CACHE = typer.Option(None, "--cache-dir", help="Where activations, SAEs and feature sets are cached.")


def register(app: typer.Typer) -> None:
    sub = typer.Typer(
        help="Diversity-driven data selection through a sparse autoencoder, and baselines.",
        invoke_without_command=True,
        no_args_is_help=False,
    )
    app.add_typer(sub, name="select")

    @sub.callback()
    def select_command(
        ctx: typer.Context,
        data: Path = typer.Option(
            None, "--data", help="SFT rows (.jsonl/.parquet): prompt+completion or messages."
        ),
        method: str = typer.Option(
            "sae-greedy",
            "--method",
            help="sae-greedy | sae-simscale | random | longest | kcenter | semdedup.",
        ),
        budget: int = typer.Option(None, "--budget", help="How many examples to select."),
        out: Path = typer.Option(None, "--out", help="The subset (.jsonl): input rows unchanged."),
        order: str = typer.Option("selection", "--order", help="Row order of the subset: selection | input."),
        report: Path | None = typer.Option(None, "--report", help="Report JSON (default <out>.report.json)."),
        report_all: bool = typer.Option(
            False,
            "--full-report",
            help="Also compute features/embeddings a baseline does not need, for the report.",
        ),
        features: Path | None = typer.Option(None, "--features", help="Precomputed feature sets (.npz)."),
        embeddings: Path | None = typer.Option(None, "--embeddings", help="Precomputed embeddings (.npy)."),
        sae: Path | None = typer.Option(None, "--sae", help="A trained SAE checkpoint (sae.pt) to use."),
        source: str | None = _SOURCE,
        cache_dir: Path | None = _CACHE,
        config: Path | None = _CONFIG,
        overrides: list[str] = _SET,
    ) -> None:
        """Select --budget examples from --data with --method and write them to --out, with a report of feature
        coverage, length distribution and diversity.

        Example: posttrain select --data sft.jsonl --method sae-greedy --budget 1000 --out subset.jsonl
        """
        if ctx.invoked_subcommand is not None:
            return
        missing = [name for name, v in (("--data", data), ("--budget", budget), ("--out", out)) if v is None]
        if missing:
            raise InputError(f"posttrain select needs {', '.join(missing)} (see posttrain select --help)")
        from posttrain.select.data import read_pool, write_subset
        from posttrain.select.report import print_reports
        from posttrain.select.run import run_selection

        cfg = _config(config, overrides, {
            "features.source": source, "cache_dir": str(cache_dir) if cache_dir else None,
            "features_path": str(features) if features else None, "sae_path": str(sae) if sae else None,
            "embeddings_path": str(embeddings) if embeddings else None,
        })  # fmt: skip
        methods = [m.strip() for m in method.split(",") if m.strip()]
        if len(methods) != 1:
            raise InputError("--method takes one method (the subset file holds one selection)")
        if order not in ("selection", "input"):
            raise InputError(f"unknown --order '{order}'; choose selection or input")
        if out.suffix != ".jsonl":
            raise InputError("the subset is written as JSONL: give an output path ending in .jsonl", out)
        pool = read_pool(data)  # every row validated before anything is computed or written
        selections, reports, ws = run_selection(pool, methods, budget, cfg, "all" if report_all else "auto")
        write_subset(out, pool, selections[methods[0]].picks, order)
        report_path = report or out.with_name(out.name.removesuffix(out.suffix) + ".report.json")
        from posttrain.atomic import atomic_write_text

        payload = {
            "data": str(data),
            "budget": budget,
            "order": order,
            "timings": ws.timings,
            "methods": reports,
        }
        atomic_write_text(report_path, json.dumps(payload, indent=2) + "\n")
        console = Console()
        print_reports(reports, console)
        console.print(
            f"wrote {len(selections[methods[0]].picks)} of {len(pool)} rows to {out}; report {report_path}"
        )

    @sub.command("train-sae")
    def train_sae_command(
        data: Path = typer.Option(..., "--data", help="SFT rows whose activations train the SAE."),
        out: Path | None = typer.Option(None, "--out", help="Also copy the trained SAE checkpoint here."),
        source: str | None = _SOURCE,
        cache_dir: Path | None = _CACHE,
        config: Path | None = _CONFIG,
        overrides: list[str] = _SET,
    ) -> None:
        """Extract activations (cached, resumable) and train a TopK SAE on them (checkpointed, resumable).

        Example: posttrain select train-sae --data sft.jsonl --set sae.steps=2000 --out sae.pt
        """
        import shutil

        from posttrain.select.data import read_pool
        from posttrain.select.run import Workspace

        cfg = _config(config, overrides, {"features.source": source,
                                          "cache_dir": str(cache_dir) if cache_dir else None})  # fmt: skip
        ws = Workspace(read_pool(data), cfg)
        ws.sae()
        assert ws.sae_report is not None
        r = ws.sae_report
        Console().print(f"SAE: {r.steps} steps, {r.rows_seen} rows, normalised MSE {r.nmse:.4f}, "
                        f"dead latents {r.dead_fraction:.1%}; timings {ws.timings}")  # fmt: skip
        if out:
            sae_dirs = sorted(ws.root.glob("sae-*/sae.pt"), key=lambda p: p.stat().st_mtime)
            shutil.copyfile(sae_dirs[-1], out)

    @sub.command("features")
    def features_command(
        data: Path = typer.Option(..., "--data", help="SFT rows."),
        out: Path = typer.Option(..., "--out", help="Feature sets (.npz: CSR indptr/indices, n_latents)."),
        sae: Path | None = typer.Option(None, "--sae", help="A trained SAE checkpoint (default: train one)."),
        threshold: float | None = typer.Option(None, "--threshold", help="Activation threshold (default 0)."),
        source: str | None = _SOURCE,
        cache_dir: Path | None = _CACHE,
        config: Path | None = _CONFIG,
        overrides: list[str] = _SET,
    ) -> None:
        """Write each example's SAE feature set (active latents over its tokens above --threshold).

        Example: posttrain select features --data sft.jsonl --out features.npz
        """
        from posttrain.select.data import read_pool
        from posttrain.select.run import Workspace

        cfg = _config(config, overrides, {"features.source": source, "features.threshold": threshold,
                                          "sae_path": str(sae) if sae else None,
                                          "cache_dir": str(cache_dir) if cache_dir else None})  # fmt: skip
        fs = Workspace(read_pool(data), cfg).features()
        fs.save(out)
        sizes = fs.sizes()
        Console().print(f"{fs.n} examples, {fs.n_latents} latents, features per example: mean {sizes.mean():.1f}, "
                        f"max {sizes.max()}; wrote {out}")  # fmt: skip

    @sub.command("replicate")
    def replicate_command(
        config: Path = typer.Option(
            Path("recipes/select_replication.yaml"), "--config", help="Replication recipe."
        ),
        overrides: list[str] = _SET,
    ) -> None:
        """Build an offline pool, select equal-size subsets with every selector, SFT the embedded model on each,
        and compare held-out IFEval accuracy.

        Example: posttrain select replicate --config recipes/select_replication.yaml
        """
        from posttrain import config as config_lib
        from posttrain.select.replication import ReplicationConfig, replicate

        cfg = config_lib.load_config(ReplicationConfig, config, overrides)
        replicate(cfg)
