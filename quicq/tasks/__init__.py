"""Tasks shared by the demo, ``quicq train``, the examples and the benchmarks — defined once.

* :mod:`quicq.tasks.digits` — scikit-learn digits: a small CNN pretrained on 0–4, adapted to 5–9.
* :mod:`quicq.tasks.text` — offline Rotten Tomatoes snippets, a user CSV, the offline MiniLM.

Every split has a validation part carved from training data; nothing is ever chosen on test.
"""

from quicq.tasks.digits import (
    DIGITS_SOURCE,
    DIGITS_TARGET,
    DigitsCNN,
    DigitsSplit,
    digits_split,
    load_digits_tensors,
    pretrain_digits_cnn,
)
from quicq.tasks.errors import DataUnavailable, TaskError
from quicq.tasks.text import (
    TextSplit,
    csv_texts,
    load_minilm_classifier,
    minilm_path,
    rotten_tomatoes,
    rotten_tomatoes_file,
    split_texts,
)

__all__ = [
    "DIGITS_SOURCE", "DIGITS_TARGET", "DataUnavailable", "DigitsCNN", "DigitsSplit", "TaskError", "TextSplit",
    "csv_texts", "digits_split", "load_digits_tensors", "load_minilm_classifier", "minilm_path",
    "pretrain_digits_cnn", "rotten_tomatoes", "rotten_tomatoes_file", "split_texts",
]
