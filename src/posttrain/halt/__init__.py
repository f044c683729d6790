"""HALT (Franzmeyer et al. 2025, arXiv 2506.04051): finetuning targets that stop where the model stops being
right.

The model's own answers are split into fragments (`fragments.py`, `code.py`), each fragment is checked
against ground truth (`math_steps.py`, `code.py`, `graders.py`), and the target keeps what is right: cut at
the first wrong step with an abstention marker, wrong facts dropped, or abstain entirely below a threshold
(`targets.py`, the method itself). `build.py` is the file stage (`posttrain halt build`), `evaluate.py` the
metrics (`posttrain eval halt`), `problems.py` the generated math problems, `recipe.py` HALT against
standard SFT.
"""
