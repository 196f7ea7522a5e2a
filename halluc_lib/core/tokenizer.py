"""A word-level tokenizer built locally from a world's vocabulary (chapter 1).

One token per word keeps the experiments legible: a name is two tokens, every answer is exactly one token,
so "the probability of the answer" is one softmax entry. The tokenizer is a real Hugging Face
``PreTrainedTokenizerFast`` built with the ``tokenizers`` library; nothing is downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

#: Special tokens shared by the GPT and BERT models. ``<idk>`` is the abstention answer of chapter 4.6.
SPECIAL_TOKENS = {
    "pad_token": "<pad>",
    "unk_token": "<unk>",
    "eos_token": "<eos>",
    "bos_token": "<eos>",
    "mask_token": "<mask>",
    "cls_token": "<cls>",
    "sep_token": "<sep>",
}
IDK_TOKEN = "<idk>"


def build_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer whose vocabulary is every word of ``texts`` plus the special tokens.

    Words are split on whitespace and punctuation (``"Lisbon."`` → ``"Lisbon"``, ``"."``); ids are assigned
    in sorted order after the specials, so the same texts always give the same ids.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be an iterable of strings, not a single string")
    pre = pre_tokenizers.Whitespace()
    words: set[str] = set()
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"texts must contain strings; got {type(text).__name__}")
        words.update(w for w, _ in pre.pre_tokenize_str(text))
    if not words:
        raise ValueError("texts contain no words: cannot build an empty vocabulary")
    specials = list(dict.fromkeys([*SPECIAL_TOKENS.values(), IDK_TOKEN]))
    return _from_vocabulary({tok: i for i, tok in enumerate(specials + sorted(words - set(specials)))})


def extend_tokenizer(tokenizer: PreTrainedTokenizerFast, texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """``tokenizer`` with the new words of ``texts`` appended after its last id (chapter 4.6).

    Every existing id is unchanged, so a trained model keeps working once its embeddings are resized
    (``model.resize_token_embeddings(len(new_tokenizer))``): the way fine-tuning introduces a new format.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be an iterable of strings, not a single string")
    vocab = dict(tokenizer.get_vocab())
    pre = pre_tokenizers.Whitespace()
    new = sorted({w for text in texts for w, _ in pre.pre_tokenize_str(text)} - set(vocab))
    start = max(vocab.values()) + 1
    vocab.update({w: start + i for i, w in enumerate(new)})
    return _from_vocabulary(vocab)


def _from_vocabulary(vocab: dict[str, int]) -> PreTrainedTokenizerFast:
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, **SPECIAL_TOKENS)
    tok.add_special_tokens({"additional_special_tokens": [IDK_TOKEN]})
    return tok


def world_tokenizer(world) -> PreTrainedTokenizerFast:
    """The tokenizer for a :class:`~halluc_lib.core.world.World`: its names, values and template words."""
    return build_tokenizer(world.vocabulary())


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, directory: str | os.PathLike) -> None:
    """Save like any Hugging Face tokenizer (``tokenizer.json`` and friends)."""
    tokenizer.save_pretrained(str(directory))


def load_tokenizer(directory: str | os.PathLike) -> PreTrainedTokenizerFast:
    """Load a tokenizer saved by :func:`save_tokenizer` from a local directory; never from a hub."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"directory: no tokenizer directory at {directory}")
    return PreTrainedTokenizerFast.from_pretrained(str(directory), local_files_only=True)
