"""Medicine: terms whose meaning depends on where the note was written (chapter 5.2).

Clinical abbreviations are ambiguous, and which reading is meant depends on the hospital: "MS" is multiple
sclerosis on a neurology ward and mitral stenosis on a cardiology one. The generator writes short notes from two
hospitals, *north* and *south*, that expand the same eight abbreviations differently; the pretraining text is
mostly from the north. A language model that cannot tell where a note comes from must expand every abbreviation
the northern way — confidently, since that is what most of the text says. Two kinds of prior knowledge are
measured against that: the note's header (which hospital wrote it) as context the model learns to use, and a
hospital's own abbreviation list applied by constrained decoding. The same GPT before pretraining is the null
model the page's claims are checked against: it prefers neither reading and reads no dose from its context.

The same corpus holds drug orders, "order : <drug> <dose> mg", with a long tail of how often each drug
appears, and formulary passages for other drugs that teach the model to read a dose from its context. Rare
drugs' doses are then asked with and without the formulary entry (a knowledge base) in front of the question.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from ..core import parallel, recipes
from ..core.files import content_sha256, save_with_card
from ..core.probe import exposure_buckets, prompt_logits
from ..core.recipes import ModelSize
from ..core.runtime import Device, check_positive_int, check_probability, check_scale
from ..core.tokenizer import build_tokenizer
from ..core.world import zipf_exposures

REGIONS = ("north", "south")
#: abbreviation -> (the north hospital's expansion, the south hospital's); real ambiguities of clinical notes.
ABBREVIATIONS = {
    "ms": ("multiple sclerosis", "mitral stenosis"),
    "pe": ("pulmonary embolism", "physical examination"),
    "ra": ("rheumatoid arthritis", "right atrium"),
    "cp": ("chest pain", "cerebral palsy"),
    "pt": ("physical therapy", "prothrombin time"),
    "dm": ("diabetes mellitus", "dermatomyositis"),
    "bs": ("blood sugar", "breath sounds"),
    "ca": ("cancer", "calcium"),
}
#: Words between the abbreviation and its expansion that say nothing about which reading is meant.
FILLERS = ("seen today", "follow up", "stable overnight", "reviewed again", "admitted today", "notes updated")
DOSES = ("5", "10", "20", "25", "40", "50", "100", "200", "250", "500")
_ONSETS, _VOWELS, _SUFFIXES = "bdfgklmnprstvz", "aeiou", ("ol", "ine", "ex", "am", "ide", "one", "ast", "umab")


def expansion(abbreviation: str, region: str) -> str:
    """What ``abbreviation`` means in notes from ``region``."""
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}; got {region!r}")
    if abbreviation not in ABBREVIATIONS:
        raise ValueError(f"abbreviation must be one of {tuple(ABBREVIATIONS)}; got {abbreviation!r}")
    return ABBREVIATIONS[abbreviation][REGIONS.index(region)]


def note_prompt(abbreviation: str, region: str, filler: str, header: bool) -> str:
    """A note up to the expansion: "note from <region> hospital : patient with ms , <filler> . ms means"."""
    head = f"note from {region} hospital" if header else "note"
    return f"{head} : patient with {abbreviation} , {filler} . {abbreviation} means"


def notes(n: int, south_share: float, seed: int = 0) -> pd.DataFrame:
    """``n`` notes (abbreviation, region, filler), ``south_share`` of them from the south hospital."""
    n = check_positive_int("n", n)
    check_probability("south_share", south_share)
    rng = np.random.default_rng([seed, 71])
    return pd.DataFrame(
        {
            "abbreviation": rng.choice(list(ABBREVIATIONS), n),
            "region": np.where(rng.random(n) < south_share, "south", "north"),
            "filler": rng.choice(FILLERS, n),
        }
    )


def note_texts(frame: pd.DataFrame, header: bool) -> list[str]:
    """The notes of ``frame`` written out, with or without the header that names the hospital."""
    return [
        f"{note_prompt(a, r, f, header)} {expansion(a, r)} ."
        for a, r, f in zip(frame.abbreviation, frame.region, frame.filler, strict=True)
    ]


def drug_names(n: int, seed: int = 0, exclude=()) -> list[str]:
    """``n`` distinct made-up drug names ("bazitol", "kemorine", …), none of them in ``exclude``."""
    n = check_positive_int("n", n)
    rng = np.random.default_rng([seed, 72])
    names: list[str] = []
    taken = set(exclude)
    while len(names) < n:
        name = "".join(rng.choice(list(_ONSETS)) + rng.choice(list(_VOWELS)) for _ in range(2)) + rng.choice(_SUFFIXES)
        if name not in taken:
            taken.add(name)
            names.append(name)
    return names


def order_prompt(drug: str) -> str:
    """The start of a drug order, which the dose completes: "order : <drug>"."""
    return f"order : {drug}"


def formulary_prompt(drug: str, dose: str) -> str:
    """The question with the knowledge base's entry for the drug in front of it."""
    return f"formulary : {drug} {dose} mg . {order_prompt(drug)}"


@dataclass(frozen=True)
class Config:
    """The corpus (notes, drug orders, formulary passages) and the model that pretrains on it."""

    n_notes: int = 4000
    # at 0.05 the header was learned in some seeds only within `steps`; at 0.10, trained in bf16, seed 4 had not
    # learned it after 1,000 steps (it read every south abbreviation the northern way); at 0.12 every seed had
    south_share: float = 0.12
    n_drugs: int = 300
    n_new_drugs: int = 100  # drugs the pretraining text never mentions (approved after it was written)
    max_mentions: int = 32
    n_formulary: int = 2000  # formulary passages about other drugs, where the dose can only be read
    dictionary_coverage: float = 0.75  # share of the abbreviations in the south hospital's own list
    # reading a dose from the formulary is learned suddenly: at 700 steps in some seeds only, at 1,000 (bf16, 12%
    # south notes) in all but seed 3, at 1,200 in all five. Trained on one thread each (side by side), seed 1's
    # header model had learned the header for half the south abbreviations at 1,200 steps and for all at 1,300
    steps: int = 1300
    # 48 notes a step: 1,200 updates took three quarters of the compute of 64 notes (which took 99 s a page on 2 cores)
    batch_size: int = 48
    lr: float = 3e-3
    size: ModelSize = ModelSize()

    def __post_init__(self):
        for name in ("n_notes", "n_drugs", "max_mentions", "n_formulary", "steps", "batch_size"):
            check_positive_int(name, getattr(self, name))
        if not (isinstance(self.n_new_drugs, int) and self.n_new_drugs >= 0):
            raise ValueError(f"n_new_drugs must be a non-negative integer; got {self.n_new_drugs!r}")
        check_probability("south_share", self.south_share)
        check_probability("dictionary_coverage", self.dictionary_coverage)

    @classmethod
    def for_scale(cls, scale: str = "quick") -> Config:
        """Quick: 4,000 notes, 300 drugs, 1,300 steps of the quick model; full: 30,000 notes, 1,500 drugs, 6,000
        steps of the full model."""
        if check_scale(scale) == "quick":
            return cls()
        return cls(
            n_notes=30000, n_drugs=1500, n_formulary=15000, steps=6000, size=ModelSize.for_scale("full"), lr=1.5e-3
        )


@dataclass
class MedicalData:
    """The notes, the drug orders, the formulary passages and the south hospital's abbreviation list."""

    notes: pd.DataFrame  # abbreviation, region, filler
    drugs: pd.DataFrame  # drug, dose, mentions (0 for the new drugs)
    formulary: pd.DataFrame  # drug, dose: the passages' other drugs
    dictionary: dict  # the south hospital's abbreviation list: abbreviation -> expansion


def make_data(config: Config, seed: int = 0) -> MedicalData:
    """Everything the chapter's corpora are written from, as a pure function of ``config`` and ``seed``."""

    rng = np.random.default_rng([seed, 73])
    n_asked = config.n_drugs + config.n_new_drugs
    names = drug_names(n_asked + config.n_formulary, seed=seed)
    mentions = zipf_exposures(config.n_drugs, max_exposures=config.max_mentions, seed=seed + 74)
    drugs = pd.DataFrame(
        {
            "drug": names[:n_asked],
            "dose": rng.choice(DOSES, n_asked),
            "mentions": np.concatenate([mentions, np.zeros(config.n_new_drugs, dtype=np.int64)]),
        }
    )
    formulary = pd.DataFrame({"drug": names[n_asked:], "dose": rng.choice(DOSES, config.n_formulary)})
    covered = rng.permutation(list(ABBREVIATIONS))[: round(config.dictionary_coverage * len(ABBREVIATIONS))]
    dictionary = {a: expansion(a, "south") for a in sorted(covered)}
    return MedicalData(notes(config.n_notes, config.south_share, seed=seed), drugs, formulary, dictionary)


#: The fields of :class:`Config` that determine the data (the rest determine the model and its training).
_DATA_FIELDS = (
    "n_notes",
    "south_share",
    "n_drugs",
    "n_new_drugs",
    "max_mentions",
    "n_formulary",
    "dictionary_coverage",
)


def _payload(data: MedicalData) -> dict:
    return {
        "notes": data.notes.to_dict(orient="list"),
        "drugs": data.drugs.to_dict(orient="list"),
        "formulary": data.formulary.to_dict(orient="list"),
        "dictionary": data.dictionary,
    }


def data_card(data: MedicalData, config: Config, seed: int) -> dict:
    """The data card of ``data``: what and how, the configuration fields that determine it, sizes, checksum."""
    return {
        "what": "Clinical-style notes from two hospitals that expand eight abbreviations differently, drug orders "
        "with a long tail of mentions (some drugs never mentioned), formulary entries for other drugs, and the "
        "south hospital's abbreviation list.",
        "how": "halluc_lib.chapters.medicine.make_data: each note's abbreviation, hospital (south with probability "
        "south_share) and filler drawn at random; drug doses uniform over ten strengths, mentions Zipf(1.2) "
        "up to max_mentions; the list covers dictionary_coverage of the abbreviations.",
        "config": {k: getattr(config, k) for k in _DATA_FIELDS},
        "seed": seed,
        "sizes": {"notes": len(data.notes), "drugs": len(data.drugs), "formulary": len(data.formulary)},
        "licence": "CC0 (synthetic; drug names are made up)",
        "sha256": content_sha256(_payload(data)),
    }


def save_data(data: MedicalData, config: Config, path, seed: int = 0):
    """Write the chapter's data as JSON with their data card, and the card as Markdown beside it."""
    return save_with_card(path, _payload(data), data_card(data, config, seed))


def data_from_payload(payload: dict) -> MedicalData:
    """The data of a file written by :func:`save_data` (read it with :func:`~halluc_lib.core.files.load_shipped`)."""
    frames = {k: pd.DataFrame(payload[k]) for k in ("notes", "drugs", "formulary")}
    return MedicalData(dictionary=payload["dictionary"], **frames)


def corpus(data: MedicalData, header: bool, seed: int = 0) -> list[str]:
    """The pretraining text: the notes (with or without headers), every drug order as often as its drug is
    mentioned, and the formulary passages, shuffled."""
    texts = note_texts(data.notes, header)
    texts += [f"{order_prompt(d)} {dose} mg ." for d, dose, k in data.drugs.itertuples(index=False) for _ in range(k)]
    texts += [f"{formulary_prompt(d, dose)} {dose} mg ." for d, dose in data.formulary.itertuples(index=False)]
    order = np.random.default_rng([seed, 75]).permutation(len(texts))
    return [texts[i] for i in order]


def tokenizer_for(data: MedicalData):
    """A word-level tokenizer for the corpus, the headers of both hospitals included."""
    return build_tokenizer(corpus(data, header=True) + [f"{r} hospital" for r in REGIONS])


def pretrain_notes_model(
    data: MedicalData,
    tokenizer: PreTrainedTokenizerBase,
    config: Config,
    *,
    header: bool,
    seed: int = 0,
    device: Device = "auto",
    cache: bool = True,
    progress: bool = False,
):
    """A tiny GPT pretrained on the corpus with or without note headers (cached); returned in eval mode."""
    texts = corpus(data, header, seed=seed)
    key = {"what": "medicine GPT", "corpus": content_sha256(texts), "batch_size": config.batch_size}
    trained = recipes.train_lm(
        texts,
        tokenizer,
        config.size,
        config.steps,
        batch_size=config.batch_size,
        lr=config.lr,
        seed=seed,
        device=device,
        cache_key=key if cache else None,
        progress=progress,
    )
    return trained.model.eval()


def untrained_notes_model(tokenizer: PreTrainedTokenizerBase, config: Config, *, seed: int = 0):
    """The GPT :func:`pretrain_notes_model` starts from (built after the same seed, so the same weights), in eval
    mode: the null model of chapter 5.2's claims — what the architecture answers before it has read a note."""
    torch.manual_seed(seed)
    return config.size.gpt(tokenizer).eval()


def _first_word_ids(tokenizer: PreTrainedTokenizerBase, phrases) -> list[int]:
    return tokenizer.convert_tokens_to_ids([p.split()[0] for p in phrases])


def expand_abbreviations(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, *, header: bool, device: Device = "auto"
) -> pd.DataFrame:
    """Every abbreviation × hospital × filler, asked as a note to be completed. The model's answer is the more
    probable of the abbreviation's two readings (their first words); ``confidence`` is its probability as a share
    of the two readings' (so at least 0.5: 0.5 is no preference), ``free_answer_valid`` whether the unconstrained
    next word is one of them at all."""
    rows = [(a, r, f) for a in ABBREVIATIONS for r in REGIONS for f in FILLERS]
    logits = prompt_logits(model, tokenizer, [note_prompt(a, r, f, header) for a, r, f in rows], device=device)
    out = []
    for (a, r, f), row in zip(rows, logits, strict=True):
        ids = _first_word_ids(tokenizer, ABBREVIATIONS[a])
        p = row[ids].softmax(-1)
        pick = int(p.argmax())
        answer = ABBREVIATIONS[a][pick]
        out.append(
            {
                "abbreviation": a,
                "region": r,
                "filler": f,
                "answer": answer,
                "confidence": float(p[pick]),
                "correct": answer == expansion(a, r),
                "majority_reading": pick == 0,
                "free_answer_valid": int(row.argmax()) in ids,
            }
        )
    return pd.DataFrame(out)


def with_dictionary(answers: pd.DataFrame, dictionary: dict, region: str = "south") -> pd.DataFrame:
    """Constrained decoding with a hospital's abbreviation list: for notes from ``region``, an abbreviation the
    list covers can only be expanded as the list says; the others keep the model's answer."""
    out = answers.copy()
    listed = (out.region == region) & out.abbreviation.isin(list(dictionary))
    out.loc[listed, "answer"] = out.loc[listed, "abbreviation"].map(dictionary)
    out.loc[listed, "confidence"] = 1.0
    out["correct"] = [
        ans == expansion(a, r) for ans, a, r in zip(out.answer, out.abbreviation, out.region, strict=True)
    ]
    return out


def summarize_expansions(answers: pd.DataFrame) -> pd.DataFrame:
    """Per hospital: accuracy, how often the northern reading was chosen, and the confidence of wrong answers."""
    grouped = answers.groupby("region")
    table = grouped.agg(accuracy=("correct", "mean"), northern_reading=("majority_reading", "mean"))
    table["confidence of wrong answers"] = answers[~answers.correct].groupby("region").confidence.mean()
    return table.reindex(list(REGIONS))


def ask_doses(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    drugs: pd.DataFrame,
    *,
    open_book: bool,
    device: Device = "auto",
) -> pd.DataFrame:
    """Each drug's dose asked closed-book ("order : <drug>") or with its formulary entry in front. The answer is
    the most probable dose; ``confidence`` its probability among the doses."""
    prompts = [
        formulary_prompt(d, dose) if open_book else order_prompt(d)
        for d, dose in zip(drugs.drug, drugs.dose, strict=True)
    ]
    logits = prompt_logits(model, tokenizer, prompts, device=device)
    dose_ids = tokenizer.convert_tokens_to_ids(list(DOSES))
    p = logits[:, dose_ids].softmax(-1)
    confidence, pick = p.max(-1)
    answers = np.asarray(DOSES)[pick.numpy()]
    return drugs.assign(
        answer=answers, confidence=confidence.numpy(), correct=answers == drugs.dose.to_numpy(), open_book=open_book
    )


def ask_wrong_formulary(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    drugs: pd.DataFrame,
    *,
    min_mentions: int = 8,
    shift: int = 3,
    device: Device = "auto",
) -> pd.DataFrame:
    """The drugs mentioned at least ``min_mentions`` times in pretraining, asked with a *wrong* formulary entry in
    front (the dose ``shift`` places further along :data:`DOSES`): does the model follow the entry or its memory?
    One row per drug: ``dose`` (the true one, which the model saw), ``formulary_dose``, ``answer``,
    ``follows_formulary``, ``follows_memory``."""
    check_positive_int("min_mentions", min_mentions)
    if not (isinstance(shift, int) and shift % len(DOSES)):
        raise ValueError(f"shift must be an integer that is not a multiple of {len(DOSES)}; got {shift!r}")
    known = drugs[drugs.mentions >= min_mentions]
    if known.empty:
        raise ValueError(f"no drug is mentioned {min_mentions} times or more; lower min_mentions")
    doses = list(DOSES)
    wrong = [doses[(doses.index(d) + shift) % len(doses)] for d in known.dose]
    answers = ask_doses(model, tokenizer, known.assign(dose=wrong), open_book=True, device=device).answer.to_numpy()
    return pd.DataFrame(
        {
            "drug": known.drug.to_numpy(),
            "dose": known.dose.to_numpy(),
            "formulary_dose": wrong,
            "answer": answers,
            "follows_formulary": answers == np.asarray(wrong),
            "follows_memory": answers == known.dose.to_numpy(),
        }
    )


@dataclass
class Run:
    """Both pretrained models and the untrained one (the null model), every abbreviation they expanded, and every
    dose the header model and the untrained one gave."""

    config: Config
    data: MedicalData
    tokenizer: object
    models: dict  # "no header" / "header" -> the pretrained GPT; "untrained" -> the GPT both start from
    expansions: pd.DataFrame  # one row per model × abbreviation × hospital × filler (untrained: no header)
    doses: pd.DataFrame  # one row per drug × (closed, open book), asked of the header model
    untrained_doses: pd.DataFrame  # the same, asked of the untrained GPT (the null model)


def run(config: Config, *, seed: int = 0, device: Device = "auto", progress: bool = False, cache: bool = True) -> Run:
    """Pretrain the model with and without note headers on the same notes, and ask both to expand every
    abbreviation in notes from each hospital; ask the header model every drug's dose, with and without the
    formulary. The untrained GPT they both start from is asked the same (notes without headers): the null model,
    at the cost of a few hundred forward passes. The two pretrainings run side by side
    (:mod:`halluc_lib.core.parallel`; a worker draws no progress bar)."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a medicine.Config; got {type(config).__name__}")
    data = make_data(config, seed=seed)
    tok = tokenizer_for(data)
    variants = {"no header": False, "header": True}
    pretrained = parallel.side_by_side(  # the two pretrainings are independent: both at once
        [
            partial(
                pretrain_notes_model,
                data,
                tok,
                config,
                header=h,
                seed=seed,
                device=device,
                cache=cache,
                progress=progress,
            )
            for h in variants.values()
        ],
        device=device,
    )
    models, frames = dict(zip(variants, pretrained, strict=True)), []
    for name, header in variants.items():
        frames.append(expand_abbreviations(models[name], tok, header=header, device=device).assign(model=name))
    models["untrained"] = untrained_notes_model(tok, config, seed=seed)
    frames.append(expand_abbreviations(models["untrained"], tok, header=False, device=device).assign(model="untrained"))

    def all_doses(model):
        return pd.concat(
            [ask_doses(model, tok, data.drugs, open_book=b, device=device) for b in (False, True)], ignore_index=True
        )

    return Run(
        config,
        data,
        tok,
        models,
        pd.concat(frames, ignore_index=True),
        all_doses(models["header"]),
        all_doses(models["untrained"]),
    )


def dose_accuracy_by_mentions(doses: pd.DataFrame, edges=(0, 1, 2, 4, 8, 16)) -> pd.DataFrame:
    """Dose accuracy closed- and open-book, by how often the drug was mentioned in pretraining."""

    bucket = exposure_buckets(doses.mentions, edges)
    return (
        doses.assign(mentions=bucket)
        .pivot_table(index="mentions", columns="open_book", values="correct", aggfunc="mean", observed=True)
        .rename(columns={False: "closed book", True: "with the formulary"})
    )
