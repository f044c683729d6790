"""Safety data: labelled conversations for a Llama Guard-style classifier (`records.py`) and posttrain's own small
seed set of them (`seed_data.py`), read by `posttrain train guard` and `posttrain redteam`."""
