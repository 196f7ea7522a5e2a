"""Finance, a domain that was rare in pretraining (chapter 5.1; the data of chapter 6).

Some words read differently in finance and in general text: a *bull* that charges a crowd is bad news and a
bull market good news; a *correction* fixes an essay but takes ten percent off a stock. A model pretrained on
text where finance is rare learns the general reading and carries it into a finance task — a confident error
that no amount of general text can fix.

The generator writes templated sentences "<subject> : <w1> and <w2>" in two domains, whose subjects
differ (a trip, a meal … / a stock, a bond …). In pretraining text the two sentiment words agree in polarity *in
that domain*, so a masked language model can learn each word's polarity from the company it keeps. The finance
sentiment task has one sentiment word per sentence beside a neutral one; its training sentences use only
words whose polarity is the same in both domains, its test sentences also the domain-flipped words — so what
the classifier knows about them comes from pretraining.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from .datafiles import content_sha256, load_with_card, save_with_card
from .runtime import check_positive_int, check_probability, check_scale

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


# --- frozen copy in data/ ------------------------------------------------------------------------------------


def save_task(task: dict[str, pd.DataFrame], path, seed: int) -> Path:
    """Write the task as JSON with a data card (and the card as Markdown beside it)."""
    payload = {split: frame.to_dict(orient="list") for split, frame in task.items()}
    card = {
        "what": "Templated finance sentiment sentences (one sentiment word and one neutral word each); the test "
        "split holds domain-flipped words read in their finance sense.",
        "how": "halluc_lib.finance.finance_task: training sentences use words whose polarity is the same in "
        "general and finance text; test sentences half those, half words whose polarity flips by domain.",
        "seed": seed,
        "sizes": {split: len(frame) for split, frame in task.items()},
        "flipped_words": {w: {"general": g, "finance": f} for w, (g, f) in FLIPPED.items()},
        "licence": "CC0 (synthetic)",
    }
    return save_with_card(path, payload, card)


def load_task(path) -> tuple[dict[str, pd.DataFrame], dict]:
    """The task and its card from a file written by :func:`save_task`; a wrong checksum is refused."""
    data, card = load_with_card(path, "finance task")
    return {split: pd.DataFrame(cols) for split, cols in data.items()}, card


# --- pretraining and fine-tuning ------------------------------------------------------------------------------


def encode(texts, tokenizer) -> torch.Tensor:
    """``<cls> sentence <sep>`` ids; every generated sentence has the same length, so no padding."""
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    if len({len(x) for x in ids}) != 1:
        raise ValueError("texts must all have the same number of tokens")
    return torch.tensor([[tokenizer.cls_token_id, *x, tokenizer.sep_token_id] for x in ids])


@dataclass(frozen=True)
class FinanceConfig:
    """Pretraining corpora (one per finance share), model size, and the two training budgets."""

    finance_shares: tuple[float, ...] = (0.01, 0.1, 0.3)
    pretrain_sentences: int = 20000
    pretrain_steps: int = 400
    finetune_steps: int = 150
    n_layer: int = 2
    hidden: int = 128
    n_head: int = 4
    batch_size: int = 256
    finetune_batch_size: int = 32
    lr: float = 2e-3
    finetune_lr: float = 1e-4  # at 5e-4 the 30% model's finance reading is partly overwritten (seeds 0, 2)
    mask_probability: float = 0.4  # above BERT's 0.15: the domain senses are learned in fewer steps

    def __post_init__(self):
        for name in ("pretrain_sentences", "pretrain_steps", "finetune_steps", "batch_size", "finetune_batch_size"):
            check_positive_int(name, getattr(self, name))
        if not self.finance_shares:
            raise ValueError("finance_shares must name at least one share")
        for share in self.finance_shares:
            check_probability("finance_shares", share)

    @classmethod
    def for_scale(cls, scale: str = "quick") -> FinanceConfig:
        check_scale(scale)
        if scale == "quick":
            return cls()
        return cls(pretrain_sentences=200000, pretrain_steps=3000, n_layer=4, hidden=256, n_head=8, lr=1e-3)


def tokenizer_for_finance():
    from .tokenizer import build_tokenizer

    return build_tokenizer(vocabulary())


def pretrain(
    tokenizer,
    corpus,
    config: FinanceConfig,
    *,
    seed: int = 0,
    device="auto",
    progress: bool = False,
    cache: bool = True,
):
    """A tiny BERT pretrained with masked-LM on ``corpus``; returned on the CPU.

    Cached (:func:`halluc_lib.cache.train_cached`) under the corpus's checksum, so chapter 6 reuses the
    models chapter 5.1 pretrained; ``cache=False`` always trains."""
    from . import models
    from .batching import MLMBatches
    from .cache import train_cached
    from .train import TrainConfig

    corpus = list(corpus)

    def build():
        torch.manual_seed(seed)
        return models.tiny_bert_mlm(tokenizer, n_layer=config.n_layer, hidden=config.hidden, n_head=config.n_head)

    batches = MLMBatches(
        encode(corpus, tokenizer),
        tokenizer,
        batch_size=config.batch_size,
        probability=config.mask_probability,
        seed=seed,
    )
    key = {
        "what": "finance masked LM",
        "corpus": content_sha256(corpus),
        "vocabulary": content_sha256(sorted(tokenizer.get_vocab().items())),
        "batch_size": config.batch_size,
        "mask_probability": config.mask_probability,
    }
    model, _, _ = train_cached(
        build,
        batches,
        TrainConfig(steps=config.pretrain_steps, lr=config.lr, seed=seed),
        key=key,
        cache=cache,
        device=device,
        progress=progress,
    )
    return model.cpu()


def _fit(model, input_ids: torch.Tensor, labels, config: FinanceConfig, *, seed: int, device):
    """Fine-tune ``model`` on (input ids, labels) with the fine-tuning budget of ``config``; CPU, eval mode."""
    from .batching import TensorBatches
    from .train import TrainConfig, train

    batches = TensorBatches(
        {"input_ids": input_ids, "labels": torch.tensor(np.asarray(labels))},
        batch_size=config.finetune_batch_size,
        seed=seed,
    )
    train_config = TrainConfig(steps=config.finetune_steps, lr=config.finetune_lr, seed=seed)
    train(model, batches, train_config, device=device, progress=False)
    return model.cpu().eval()


@torch.inference_mode()
def _judge(model, input_ids: torch.Tensor, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the predicted label, the probability of the prediction and whether it is right."""
    confidence, predicted = model(input_ids=input_ids).logits.softmax(-1).max(-1)
    return frame.assign(
        predicted=predicted.numpy(), confidence=confidence.numpy(), correct=predicted.numpy() == frame.label.to_numpy()
    )


@dataclass
class FinanceRun:
    config: FinanceConfig
    task: dict
    predictions: pd.DataFrame  # one row per (pretraining, test sentence)
    pretrained: dict  # pretraining name -> the masked LM (None for random init)
    tokenizer: object


def run_finance(
    config: FinanceConfig, *, seed: int = 0, device="auto", task=None, progress: bool = False, cache: bool = True
) -> FinanceRun:
    """Pretrain one tiny BERT per finance share (cached), fine-tune each as a :class:`ClozeClassifier` — and
    one from random weights — on the same finance task, and predict the test sentences with each."""
    if not isinstance(config, FinanceConfig):
        raise TypeError(f"config must be a FinanceConfig; got {type(config).__name__}")
    from . import models

    task = finance_task(seed=seed) if task is None else task
    tok = tokenizer_for_finance()
    torch.manual_seed(seed)
    starts = {
        "random init": models.tiny_bert_mlm(tok, n_layer=config.n_layer, hidden=config.hidden, n_head=config.n_head)
    }
    for share in config.finance_shares:
        corpus = pretraining_corpus(config.pretrain_sentences, share, seed=seed)
        starts[f"{share:.0%} finance"] = pretrain(
            tok, corpus, config, seed=seed, device=device, progress=progress, cache=cache
        )
    frames = []
    for name, start in starts.items():
        model = fine_tune_cloze(tok, task["train"], config, start_from=start, seed=seed, device=device)
        frames.append(predict_cloze(model, tok, task["test"]).assign(pretraining=name))
    return FinanceRun(config, task, pd.concat(frames, ignore_index=True), starts, tok)


def summary(run) -> pd.DataFrame:
    """Per pretraining: test accuracy on shared and on flipped words, and the confidence of wrong answers.

    ``run`` is a :class:`FinanceRun` or a predictions frame with a ``pretraining`` column (chapter 6.3)."""
    p = run.predictions if isinstance(run, FinanceRun) else run
    out = p.groupby("pretraining", sort=False).agg(accuracy=("correct", "mean"))
    for flipped, name in ((False, "shared words"), (True, "flipped words")):
        out[f"accuracy, {name}"] = p[p.flipped == flipped].groupby("pretraining", sort=False).correct.mean()
    wrong = p[~p.correct]
    out["confidence of wrong answers"] = wrong.groupby("pretraining", sort=False).confidence.mean()
    out["share of errors on flipped words"] = wrong.groupby("pretraining", sort=False).flipped.mean()
    return out


@torch.inference_mode()
def read_senses(mlm, tokenizer) -> pd.DataFrame:
    """How a pretrained masked LM reads each flipped word in each domain: in "<subject> : <word> and [MASK]",
    the share of the sentiment-word probability that goes to positive words (one row per word and domain).
    ``reads_as`` is the polarity that share implies; ``right`` compares it with the word's polarity there."""
    positive = tokenizer.convert_tokens_to_ids([w for w, s in SHARED.items() if s > 0])
    negative = tokenizer.convert_tokens_to_ids([w for w, s in SHARED.items() if s < 0])
    mlm.eval()
    rows = []
    for domain in DOMAINS:
        for word in FLIPPED:
            texts = [TEMPLATE.format(subject=s, w1=word, w2="good") for s in SUBJECTS[domain]]
            ids = encode(texts, tokenizer)
            ids[:, -2] = tokenizer.mask_token_id  # the partner word, before <sep>
            p = mlm(input_ids=ids).logits[:, -2].softmax(-1)
            share = (p[:, positive].sum(-1) / (p[:, positive].sum(-1) + p[:, negative].sum(-1))).mean().item()
            reads_as = 1 if share > 0.5 else -1
            rows.append(
                {
                    "word": word,
                    "domain": domain,
                    "p_positive": share,
                    "reads_as": reads_as,
                    "right": reads_as == polarity(word, domain),
                }
            )
    return pd.DataFrame(rows)


#: Label words of the cloze classifier: the masked partner word is read as the sentence's sentiment.
LABEL_WORDS = ("bad", "good")


def cloze_texts(frame: pd.DataFrame) -> list[str]:
    """Each sentence's sentiment word followed by a masked partner: "<subject> : <word> and [MASK]"."""
    subjects = frame.text.str.split().str[0]
    return [TEMPLATE.format(subject=s, w1=w, w2="good") for s, w in zip(subjects, frame.word, strict=True)]


class ClozeClassifier(torch.nn.Module):
    """Sentiment read from a masked LM (Schick & Schütze 2021): the logits of the label words at the masked
    partner position are the class logits. Fine-tuning it keeps the pretraining task's form, so what the masked
    LM learned about a word carries over to the classification directly."""

    def __init__(self, mlm, tokenizer):
        super().__init__()
        self.mlm, self.mask_id = mlm, tokenizer.mask_token_id
        self.register_buffer("label_ids", torch.tensor(tokenizer.convert_tokens_to_ids(list(LABEL_WORDS))))

    def forward(self, input_ids, labels=None, **_):
        masked = input_ids.clone()
        masked[:, -2] = self.mask_id
        logits = self.mlm(input_ids=masked).logits[:, -2][:, self.label_ids]
        loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SimpleNamespace(loss=loss, logits=logits)


def fine_tune_cloze(
    tokenizer, train_frame: pd.DataFrame, config: FinanceConfig, *, start_from, seed: int = 0, device="auto"
):
    """A :class:`ClozeClassifier` on a copy of ``start_from`` (a pretrained masked LM), fine-tuned on
    ``train_frame``; returned on the CPU in eval mode."""
    import copy

    torch.manual_seed(seed)
    model = ClozeClassifier(copy.deepcopy(start_from), tokenizer)
    ids = encode(cloze_texts(train_frame), tokenizer)
    return _fit(model, ids, train_frame.label, config, seed=seed, device=device)


def predict_cloze(model, tokenizer, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the predicted label, the probability of the prediction and whether it is right."""
    return _judge(model, encode(cloze_texts(frame), tokenizer), frame)
