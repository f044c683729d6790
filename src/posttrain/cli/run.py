"""`posttrain run RECIPE.yaml`: the whole loop, each stage cached and resumable."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        recipe: Path = typer.Argument(..., help="Recipe YAML, e.g. recipes/quickstart.yaml."),
        overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. sample.n=8 train.loss.beta=0.2"),
        from_stage: str | None = typer.Option(None, "--from", help="Rerun from this stage (and all later ones)."),
        ray_address: str | None = typer.Option(
            None, "--ray-address",
            help="With executor=ray: a running Ray cluster (host:port, ray://host:10001); default: ray.address, "
            "else RAY_ADDRESS, else a local cluster.",
        ),  # fmt: skip
    ) -> None:
        """Synthetic prompts -> samples -> judges -> pairs -> DPO -> evaluation before/after -> HTML report.

        Finished stages are skipped on a rerun (their config and inputs are hashed); an interrupted stage resumes.

        Example: posttrain run recipes/quickstart.yaml name=try2 sample.n=6 --from pairs

        On Ray (sample and judge stages; docs/scale-out.md): posttrain run recipes/quickstart.yaml executor=ray
        """
        from posttrain.config import load_config
        from posttrain.pipeline.quickstart import RunConfig, build_stages
        from posttrain.pipeline.runner import run_stages

        cfg = load_config(RunConfig, recipe, overrides or [])
        cfg.check()
        console = Console()
        if ray_address:
            cfg.ray.address = ray_address
        if cfg.executor == "ray":  # the cluster and its resources are checked before any stage writes a file
            from posttrain.distributed.cluster import prepare

            actors = prepare(cfg.ray)
            console.print(f"Ray: up to {actors} sampling actors of {cfg.ray.cpus_per_actor} CPUs each")
        timings: list[dict[str, object]] = []

        def on_event(stage: str, event: str, seconds: float) -> None:
            if event == "start":
                console.rule(f"[bold]{stage}")
                return
            timings.append({"stage": stage, "seconds": round(seconds, 2), "cached": event == "cached"})
            console.print(f"[green]✓[/] {stage} ({seconds:.1f} s)" if event == "done" else f"[dim]• {stage}: cached[/]")

        stages = build_stages(cfg, timings)
        run_stages(stages, cfg.run_dir, from_stage, on_event)
        report = cfg.run_dir / "report.html"
        console.print(f"\nReport: [bold]{report}[/]")
