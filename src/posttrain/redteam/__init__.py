"""Red-teaming: MART's multi-round loop of an adversarial model and a target model (`mart.py`)."""
