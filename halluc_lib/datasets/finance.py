"""Finance, a domain that is rare in pretraining text: the generator and the pretrained models that chapters 5.1,
6.2 and 6.3 share.

Some words read differently in finance and in general text: a *bull* that charges a crowd is bad news and a
bull market good news; a *correction* fixes an essay but takes ten percent off a stock. The generator writes
templated sentences "<subject> : <w1> and <w2>" in two domains, whose subjects differ (a trip, a meal … / a
stock, a bond …). In pretraining text the two sentiment words agree in polarity *in that domain*, so a masked
language model can learn each word's polarity from the company it keeps. The finance sentiment task has one
sentiment word per sentence beside a neutral one; its training sentences use only words whose polarity is the
same in both domains, its test sentences also the domain-flipped words — so what a classifier knows about
them comes from pretraining.

Its :func:`pretrain_mlm` trains (or loads from the cache) the masked LM of one pretraining corpus; chapter 5.1 calls it
first, and chapter 6.3 gets the same models back from the cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from ..core import parallel, recipes
from ..core.files import content_sha256, load_shipped, save_with_card
from ..core.recipes import ModelSize
from ..core.runtime import Device, check_positive_int, check_probability, check_scale, check_shares
from ..core.tokenizer import build_tokenizer

DOMAINS = ("general", "finance")


SUBJECTS = {
    "general": ("trip", "meal", "film", "garden", "concert", "visit", "lesson", "farm"),
    "finance": ("stock", "bond", "fund", "market", "portfolio", "shares", "index", "bank"),
}


#: Sentiment words whose polarity is the same in both domains.
SHARED = {
    "good": 1,
    "great": 1,
    "strong": 1,
    "excellent": 1,
    "solid": 1,
    "bad": -1,
    "poor": -1,
    "weak": -1,
    "terrible": -1,
    "dismal": -1,
}


#: Domain-flipped words: (polarity in general text, polarity in finance), with the two readings.
FLIPPED = {
    "bull": (-1, 1),  # an animal that charges / a rising market
    "correction": (1, -1),  # a fix / a fall in prices
    "yield": (-1, 1),  # giving way / income from an investment
    "leverage": (1, -1),  # an advantage / debt that magnifies losses
    "outstanding": (1, -1),  # excellent / unpaid
    "short": (1, -1),  # a short wait / a bet that prices fall
}


NEUTRAL = ("quiet", "long", "busy", "normal", "usual", "slow")


TEMPLATE = "{subject} : {w1} and {w2}"


LABELS = ("negative", "positive")


def polarity(word: str, domain: str) -> int:
    """+1 or −1: what ``word`` says in ``domain``."""
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}; got {domain!r}")
    if word in SHARED:
        return SHARED[word]
    if word in FLIPPED:
        return FLIPPED[word][DOMAINS.index(domain)]
    raise ValueError(f"word must be a sentiment word ({sorted(SHARED) + sorted(FLIPPED)}); got {word!r}")


def _words_with(sign: int, domain: str) -> list[str]:
    return [w for w in (*SHARED, *FLIPPED) if polarity(w, domain) == sign]


def vocabulary() -> list[str]:
    """Every word the finance sentences use, for the tokenizer."""
    words = [TEMPLATE.replace("{subject}", " ").replace("{w1}", " ").replace("{w2}", " ")]
    return words + [s for subjects in SUBJECTS.values() for s in subjects] + [*SHARED, *FLIPPED, *NEUTRAL]


def pretraining_corpus(n: int, finance_share: float, seed: int = 0) -> list[str]:
    """``n`` sentences, ``finance_share`` of them about finance; in each, two words of one polarity as read in
    the sentence's domain (flipped words about a third of the time)."""
    n = check_positive_int("n", n)
    check_probability("finance_share", finance_share)
    rng = np.random.default_rng([seed, 61])
    out = []
    for _ in range(n):
        domain = "finance" if rng.random() < finance_share else "general"
        sign = rng.choice((-1, 1))
        pool = _words_with(sign, domain)
        flipped = [w for w in pool if w in FLIPPED]
        w1 = rng.choice(flipped) if rng.random() < 1 / 3 else rng.choice(pool)
        w2 = rng.choice([w for w in pool if w != w1])
        pair = (w1, w2) if rng.random() < 0.5 else (w2, w1)
        out.append(TEMPLATE.format(subject=rng.choice(SUBJECTS[domain]), w1=pair[0], w2=pair[1]))
    return out


def sentiment_sentences(n: int, words, seed: int = 0, domain: str = "finance") -> pd.DataFrame:
    """``n`` labelled sentences in ``domain``, each with one sentiment word from ``words`` and a neutral one.

    Columns: ``text``, ``label`` (1 positive, 0 negative, as read in ``domain``), ``word``, ``flipped``."""
    n = check_positive_int("n", n)
    words = list(words)
    if not words:
        raise ValueError("words must name at least one sentiment word")
    rng = np.random.default_rng([seed, 62])
    rows = []
    for _ in range(n):
        word = str(rng.choice(words))
        pair = (word, rng.choice(NEUTRAL)) if rng.random() < 0.5 else (rng.choice(NEUTRAL), word)
        rows.append(
            {
                "text": TEMPLATE.format(subject=rng.choice(SUBJECTS[domain]), w1=pair[0], w2=pair[1]),
                "label": int(polarity(word, domain) > 0),
                "word": word,
                "flipped": word in FLIPPED,
            }
        )
    return pd.DataFrame(rows)


def finance_task(n_train: int = 400, n_test: int = 600, seed: int = 0) -> dict[str, pd.DataFrame]:
    """The finance sentiment task: training sentences with shared words only; test sentences half shared,
    half domain-flipped words (read in their finance sense)."""
    train = sentiment_sentences(n_train, SHARED, seed=seed)
    test = pd.concat(
        [
            sentiment_sentences(n_test // 2, SHARED, seed=seed + 1),
            sentiment_sentences(n_test - n_test // 2, FLIPPED, seed=seed + 2),
        ],
        ignore_index=True,
    )
    return {"train": train, "test": test}


def save_task(task: dict[str, pd.DataFrame], path, seed: int) -> Path:
    """Write the task as JSON with a data card (and the card as Markdown beside it)."""
    payload = {split: frame.to_dict(orient="list") for split, frame in task.items()}
    card = {
        "what": "Templated finance sentiment sentences (one sentiment word and one neutral word each); the test "
        "split holds domain-flipped words read in their finance sense.",
        "how": "halluc_lib.datasets.finance.finance_task: training sentences use words whose polarity is the same in "
        "general and finance text; test sentences half those, half words whose polarity flips by domain.",
        "seed": seed,
        "sizes": {split: len(frame) for split, frame in task.items()},
        "flipped_words": {w: {"general": g, "finance": f} for w, (g, f) in FLIPPED.items()},
        "licence": "CC0 (synthetic)",
    }
    return save_with_card(path, payload, card)


def task_from_data(data: dict) -> dict[str, pd.DataFrame]:
    """The task from the data of a file written by :func:`save_task` (see :func:`load_task`)."""
    return {split: pd.DataFrame(cols) for split, cols in data.items()}


def load_task(seed: int = 0) -> dict[str, pd.DataFrame]:
    """The finance task at ``seed``: the copy shipped in ``data/`` (checksum verified) where the book ships
    one, generated by :func:`finance_task` otherwise — the two are equal, which a unit test checks."""
    shipped = load_shipped("finance_sentiment", seed)
    return task_from_data(shipped.data) if shipped is not None else finance_task(seed=seed)


def encode(texts, tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    """``<cls> sentence <sep>`` ids; every generated sentence has the same length, so no padding."""
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    if len({len(x) for x in ids}) != 1:
        raise ValueError("texts must all have the same number of tokens")
    return torch.tensor([[tokenizer.cls_token_id, *x, tokenizer.sep_token_id] for x in ids])


@dataclass(frozen=True)
class PretrainConfig:
    """Pretraining corpora (one per finance share) and the masked LM pretrained on each."""

    finance_shares: tuple[float, ...] = (0.01, 0.1, 0.3)
    sentences: int = 20000
    steps: int = 400
    size: ModelSize = ModelSize()
    batch_size: int = 256
    lr: float = 2e-3
    mask_probability: float = 0.4  # above BERT's 0.15: the domain senses are learned in fewer steps

    def __post_init__(self):
        for name in ("sentences", "steps", "batch_size"):
            check_positive_int(name, getattr(self, name))
        check_shares("finance_shares", self.finance_shares)
        check_probability("mask_probability", self.mask_probability, open_low=True)

    @classmethod
    def for_scale(cls, scale: str = "quick") -> PretrainConfig:
        """Quick: 20,000 sentences, 400 steps, the quick model; full: 200,000 sentences, 3,000 steps, the full
        model at lr 1e-3."""
        if check_scale(scale) == "quick":
            return cls()
        return cls(sentences=200000, steps=3000, size=ModelSize.for_scale("full"), lr=1e-3)


def tokenizer_for_finance():
    """The word-level tokenizer of the finance sentences (the same for every corpus and task)."""
    return build_tokenizer(vocabulary())


def pretrain_mlm(
    tokenizer: PreTrainedTokenizerBase,
    corpus,
    config: PretrainConfig,
    *,
    seed: int = 0,
    device: Device = "auto",
    progress: bool = False,
    cache: bool = True,
):
    """A tiny BERT pretrained with masked-LM on ``corpus``; returned on the CPU.

    Cached (:mod:`halluc_lib.core.cache`) under the corpus's checksum, so chapter 6.3 reuses the models chapter
    5.1 pretrained, and trains them when run alone; ``cache=False`` always trains."""
    corpus = list(corpus)
    key = {
        "what": "finance masked LM",
        "corpus": content_sha256(corpus),
        "vocabulary": content_sha256(sorted(tokenizer.get_vocab().items())),
        "batch_size": config.batch_size,
        "mask_probability": config.mask_probability,
    }
    trained = recipes.train_mlm(
        encode(corpus, tokenizer),
        tokenizer,
        config.size,
        config.steps,
        mask_probability=config.mask_probability,
        batch_size=config.batch_size,
        lr=config.lr,
        seed=seed,
        device=device,
        cache_key=key if cache else None,
        progress=progress,
    )
    return trained.model.cpu()


def pretrained_mlms(
    tokenizer: PreTrainedTokenizerBase,
    config: PretrainConfig,
    *,
    shares=None,
    seed: int = 0,
    device: Device = "auto",
    progress: bool = False,
):
    """``{"<share> finance": masked LM}`` for every share of ``config`` (or ``shares``), pretrained or cached.

    The pretrainings are independent, so they run side by side (:mod:`halluc_lib.core.parallel`; a worker draws
    no progress bar)."""
    shares = config.finance_shares if shares is None else shares

    def pretrained_on(share):  # a job draws its own corpus, so the corpora are drawn side by side too
        corpus = pretraining_corpus(config.sentences, share, seed=seed)
        return pretrain_mlm(tokenizer, corpus, config, seed=seed, device=device, progress=progress)

    jobs = [partial(pretrained_on, share) for share in shares]
    return dict(
        zip([f"{share:.0%} finance" for share in shares], parallel.side_by_side(jobs, device=device), strict=True)
    )


def summarize_predictions(p: pd.DataFrame) -> pd.DataFrame:
    """Per ``pretraining`` (a column of the predictions): test accuracy overall, on shared and on flipped words,
    the confidence of wrong answers and the share of errors on flipped words (chapters 5.1 and 6.3)."""
    out = p.groupby("pretraining", sort=False).agg(accuracy=("correct", "mean"))
    for flipped, name in ((False, "shared words"), (True, "flipped words")):
        out[f"accuracy, {name}"] = p[p.flipped == flipped].groupby("pretraining", sort=False).correct.mean()
    wrong = p[~p.correct]
    out["confidence of wrong answers"] = wrong.groupby("pretraining", sort=False).confidence.mean()
    out["share of errors on flipped words"] = wrong.groupby("pretraining", sort=False).flipped.mean()
    return out
