"""`posttrain train sft|rm|dpo|critic-rm|guard|cgpo|grpo`: training recipes (offline, and the online loop: CGPO or the GRPO family), configured by YAML + `key=value`
overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from posttrain.errors import InputError

CONFIG_HELP = "YAML recipe (e.g. recipes/dpo.yaml); omitted = the recipe's defaults."
DATA_HELP = "Records file (JSONL/Parquet); overrides data.path."
OVERRIDES_HELP = "Dotted overrides, e.g. train.lr=1e-6 lora.enabled=true."


def _data_path(cfg: Any, data: Path | None) -> str:
    path = str(data) if data is not None else cfg.data.path
    if not path:
        raise InputError("no training data: pass --data FILE or set data.path in the config")
    return path


def _report(result: Any, what: str) -> None:
    console = Console()
    final = result.final
    stats = ", ".join(f"{k} {final[k]:.4g}" for k in what.split(",") if k in final)
    console.print(
        f"trained {result.steps} steps in {result.train_seconds:.0f} s ({stats}); "
        f"model: {result.model_dir}, metrics: {result.metrics_path}"
        + (f"; skipped {result.skipped} rows with too-long prompts" if result.skipped else "")
    )


def register(app: typer.Typer) -> None:
    sub = typer.Typer(
        help="Training: SFT, reward model, DPO (Llama 3 recipes), online CGPO.", no_args_is_help=True
    )
    app.add_typer(sub, name="train")

    @sub.command("sft")
    def sft(
        overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
        config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
        data: Path = typer.Option(None, "--data", help=DATA_HELP),
    ) -> None:
        """Supervised fine-tuning on response tokens only; rows are prompt + completion, or messages.

        Example: posttrain train sft --config recipes/sft.yaml --data samples.jsonl train.epochs=2
        """
        from posttrain.config import load_config
        from posttrain.train.data import read_rows_with_lines
        from posttrain.train.sft import SFTConfig, SFTExample, train_sft

        cfg = load_config(SFTConfig, config, overrides or [])
        rows, source = read_rows_with_lines(_data_path(cfg, data), SFTExample)
        _report(train_sft(cfg, rows, source), "loss")

    @sub.command("rm")
    def rm(
        overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
        config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
        data: Path = typer.Option(None, "--data", help=DATA_HELP),
    ) -> None:
        """Train a Bradley-Terry reward model on preference pairs (optional margin, packed responses).

        Example: posttrain train rm --config recipes/rm.yaml --data pairs.jsonl data.pack_responses=true
        """
        from posttrain.config import load_config
        from posttrain.records import Pair
        from posttrain.train.data import read_rows_with_lines
        from posttrain.train.reward import RMConfig, train_reward

        cfg = load_config(RMConfig, config, overrides or [])
        rows, source = read_rows_with_lines(_data_path(cfg, data), Pair)
        _report(train_reward(cfg, rows, source), "loss,accuracy,margin")

    @sub.command("dpo")
    def dpo(
        overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
        config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
        data: Path = typer.Option(None, "--data", help=DATA_HELP),
    ) -> None:
        """Offline DPO as in Llama 3 (cached reference, masked format tokens, optional NLL term; IPO, DPO-Positive;
        mDPO / mIPO on groups of K chosen vs K rejected responses, `loss.type=mdpo|mipo`, read as group records).

        Examples:
          posttrain train dpo --config recipes/dpo.yaml --data pairs.jsonl loss.nll_coef=0.2
          posttrain train dpo --config recipes/mdpo.yaml --data groups.jsonl
        """
        from posttrain.config import load_config
        from posttrain.records import GroupPair, Pair
        from posttrain.train.data import read_rows_with_lines
        from posttrain.train.dpo import GROUP_LOSSES, DPOConfig, train_dpo

        cfg = load_config(DPOConfig, config, overrides or [])
        kind = GroupPair if cfg.loss.type in GROUP_LOSSES else Pair
        rows, source = read_rows_with_lines(_data_path(cfg, data), kind)
        _report(train_dpo(cfg, rows, source), "loss,rewards/accuracy,rewards/margin")

    @sub.command("critic-rm")
    def critic_rm(
        overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
        config: Path = typer.Option(None, "--config", help=CONFIG_HELP),
        data: Path = typer.Option(None, "--data", help=DATA_HELP),
    ) -> None:
        """Critic-RM: the model critiques both responses of each pair itself, the critiques that agree with the
        label are kept (and ranked or summarised), then one model learns to write critiques and to score
        (prompt, response, critique). Judge with it: `type: critic_rm, model: <output_dir>/model`.

        Example: posttrain train critic-rm --config recipes/critic_rm.yaml --data pairs.jsonl critiques.n=4
        """
        from posttrain.config import load_config
        from posttrain.records import Pair
        from posttrain.train.critic_rm import CriticRMConfig, train_critic_rm
        from posttrain.train.data import read_rows_with_lines

        cfg = load_config(CriticRMConfig, config, overrides or [])
        rows, source = read_rows_with_lines(_data_path(cfg, data), Pair)
        result = train_critic_rm(cfg, rows, source)
        c = result.critiques
        Console().print(
            f"critiques: {c['pairs_kept']} of {c['pairs']} pairs kept ({c['pairs_disagree']} disagree with their "
            f"label, {c['pairs_unparseable']} without a parseable critique on a side); "
            f"{c['critiques_unparseable']} of {c['critiques']} critiques unparseable; {c['examples']} training rows"
        )
        _report(result, "loss,critique_loss,rm_loss,accuracy")

    @sub.command("guard")
    def guard(
        overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
        config: Path = typer.Option(None, "--config", help="YAML recipe (e.g. recipes/guard.yaml)."),
        data: Path = typer.Option(None, "--data", help="Labelled conversations (JSONL/Parquet); default: data.path, "
                                  "else posttrain's seed set."),  # fmt: skip
    ) -> None:
        """A Llama Guard 3-format safety classifier (prompt and response classification) fine-tuned from labelled
        conversations, evaluated on held-out rows through the llama_guard judge, before and after. Judge with it:
        `type: llama_guard, model: <output_dir>/model`.

        Example: posttrain train guard --config recipes/guard.yaml data.path=guard.jsonl
        """
        from posttrain.cli.guard_report import print_guard_result
        from posttrain.config import load_config
        from posttrain.safety.records import GuardExample
        from posttrain.train.data import read_rows_with_lines
        from posttrain.train.guard import GuardConfig, train_guard

        cfg = load_config(GuardConfig, config, overrides or [])
        path = str(data) if data is not None else cfg.data.path
        rows, source = read_rows_with_lines(path, GuardExample) if path else (None, None)
        result = train_guard(cfg, rows, source)
        _report(result.train, "loss")
        print_guard_result(result)

    prompts_help = "Prompt records (JSONL/Parquet); default: data.path, else synthetic IF prompts."

    @sub.command("cgpo")
    def cgpo(
        overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
        config: Path = typer.Option(None, "--config", help="YAML recipe (e.g. recipes/cgpo_ifeval.yaml)."),
        prompts: Path = typer.Option(None, "--prompts", help=prompts_help),
    ) -> None:
        """Online CGPO (Mixture of Judges; CRPG, CODPO or CRRAFT per task) on the in-process policy.

        Example: posttrain train cgpo --config recipes/cgpo_ifeval.yaml tasks.instruction_following.optimizer=crpg
        """
        _online(config, overrides, prompts, None, "loss,violation,calibrated_reward,kl")

    @sub.command("grpo")
    def grpo(
        overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
        config: Path = typer.Option(None, "--config", help="YAML recipe (e.g. recipes/grpo_ifeval.yaml)."),
        prompts: Path = typer.Option(None, "--prompts", help=prompts_help),
    ) -> None:
        """Online GRPO, RLOO or REINFORCE++ with verifiable rewards: the same loop as `train cgpo`, where a task
        that names no optimizer uses grpo.

        Example: posttrain train grpo --config recipes/grpo_ifeval.yaml tasks.instruction_following.kl_coef=0.04
        """
        _online(config, overrides, prompts, "grpo", "loss,reward,violation,clip_fraction,kl")


def _online(config: Path | None, overrides: list[str] | None, prompts: Path | None, default: str | None,
            columns: str) -> None:  # fmt: skip
    from posttrain.config import load_config
    from posttrain.records import Prompt
    from posttrain.train.cgpo import CGPOConfig, train_cgpo
    from posttrain.train.data import read_rows_with_lines

    cfg = load_config(CGPOConfig, config, overrides or [])
    if default is not None:  # tasks that name no optimizer take the command's
        cfg.tasks = {name: {"optimizer": default, **(raw or {})} for name, raw in cfg.tasks.items()}
    path = str(prompts) if prompts is not None else cfg.data.path
    rows, source = read_rows_with_lines(path, Prompt) if path else (None, None)
    result = train_cgpo(cfg, rows, source)
    _report(result, columns)
    for name in ("eval_before", "eval_after"):
        metrics = result.output_dir / name / "heldout" / "metrics.json"
        if metrics.exists():
            import json

            acc = json.loads(metrics.read_text(encoding="utf-8"))["prompt_level_strict_acc"]
            Console().print(f"{name}: held-out violation rate {1 - acc:.3f} (prompt-level strict, IFEval mode)")
    from posttrain.evals.paired import compare_dirs

    paired = compare_dirs(result.output_dir / "eval_before" / "heldout", result.output_dir / "eval_after" / "heldout")
    if paired is not None:
        Console().print(f"held-out, prompt-level strict: {paired.describe()}")
    from posttrain.train.cgpo import sampled_paired

    sampled = sampled_paired(result.output_dir)
    if sampled is not None:
        Console().print(f"held-out, sampled (heldout_k): {sampled.describe('responses')}")
