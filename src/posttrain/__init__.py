"""posttrain: verifiable preference data and constrained alignment for language models."""

__version__ = "0.1.0"
