"""Files the book writes and ships: atomic writes, and data with a data card that carries its checksum.

Every dataset in ``data/`` (the chapter 2.1 world, the chapter 5 finance task and recommender logs) is one JSON
file ``{"card": ..., <key>: ...}`` whose card holds the SHA-256 of the data's canonical JSON, with the card
also written as Markdown beside it. Loading refuses a file whose contents no longer match its card.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def content_sha256(data) -> str:
    """SHA-256 of ``data``'s canonical JSON (sorted keys, no spaces): equal contents, equal checksum."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def save_with_card(path, data, card: dict, *, key: str = "data", indent: int | None = None) -> Path:
    """Write ``{"card": card, key: data}`` with the card's ``sha256`` set to the data's checksum, and the card
    as a Markdown data card beside it (``<name>.md``); both atomically. Returns ``path``."""
    path = Path(path)
    card = {**card, "sha256": content_sha256(data)}
    atomic_write_text(path, json.dumps({"card": card, key: data}, indent=indent))
    lines = [f"# Data card: {path.name}", ""] + [f"- **{k}**: {v}" for k, v in card.items()]
    atomic_write_text(path.with_suffix(".md"), "\n".join(lines) + "\n")
    return path


def load_with_card(path, what: str, *, key: str = "data") -> tuple[object, dict]:
    """The data and card of a file written by :func:`save_with_card`. ``what`` names the kind of file in the
    errors: a missing file, one without exactly the keys ``card`` and ``key``, or one whose checksum does not
    match its card."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"path: no {what} file at {path}")
    payload = json.loads(path.read_text())
    if not isinstance(payload, dict) or set(payload) != {"card", key}:
        raise ValueError(f"path: {path} is not a {what} file (expected keys 'card' and '{key}')")
    expected, actual = payload["card"].get("sha256"), content_sha256(payload[key])
    if expected != actual:
        raise ValueError(f"path: checksum mismatch in {path}: card says {expected}, contents hash to {actual}")
    return payload[key], payload["card"]


#: The folder of shipped datasets, each ``<name>_seed<seed>.json`` + card, and of the committed sweep
#: (``sweeps/``): package data, read with ``importlib.resources``, so an installed wheel carries them. In the
#: repository ``halluc_lib/shipped`` is a link to ``data/`` at its root; the wheel holds a copy.
DATA_DIR = Path(str(importlib.resources.files("halluc_lib") / "shipped"))

#: Every shipped dataset: its name → (what it is, for error messages; the key its data is stored under).
SHIPPED = {
    "exposure_world": ("world", "world"),
    "finance_sentiment": ("finance task", "data"),
    "medicine_notes": ("medicine data", "data"),
    "recsys_popularity": ("recommender data", "data"),
}


@dataclass(frozen=True)
class Shipped:
    """A dataset shipped in ``data/``: its path, its data (checksum verified) and its card."""

    name: str
    path: Path
    data: object
    card: dict


def shipped_path(name: str, seed: int = 0) -> Path:
    """Where the book ships dataset ``name`` generated at ``seed`` (the file may not exist for every seed)."""
    if name not in SHIPPED:
        raise ValueError(f"name must be one of {sorted(SHIPPED)}; got {name!r}")
    return DATA_DIR / f"{name}_seed{seed}.json"


def load_shipped(name: str, seed: int = 0) -> Shipped | None:
    """Dataset ``name`` as the book ships it for ``seed``, checksum verified; ``None`` when no file is shipped
    for that seed (the book ships seed 0; other seeds are generated)."""
    path = shipped_path(name, seed)
    if not path.exists():
        return None
    what, key = SHIPPED[name]
    data, card = load_with_card(path, what, key=key)
    return Shipped(name, path, data, card)


def verify_shipped(name: str, seed: int, sha256: str) -> str:
    """Check that data generated now has the checksum of the shipped copy (when one is shipped for ``seed``).

    Raises ``ValueError`` if the generator no longer reproduces the shipped file; returns a one-line note.
    """
    shipped = load_shipped(name, seed)
    if shipped is None:
        return f"no shipped copy of {name} for seed {seed}: generated"
    if shipped.card["sha256"] != sha256:
        raise ValueError(
            f"sha256: the generator no longer reproduces {shipped.path.name} "
            f"(shipped {shipped.card['sha256'][:12]}…, generated {sha256[:12]}…)"
        )
    return f"identical to the shipped {shipped.path.name} (sha256 {sha256[:12]}…)"
