"""Synthetic worlds: people, their facts, how often each fact is seen, and the text that states them.

Introduced in chapter 1 and used throughout chapter 2. Because the world is generated, the ground truth of
every question is known and so is the *exposure count* of every fact — the number of training documents that
state it — which real corpora only let us estimate (Kandpal et al., 2023).

Everything here is a pure function of its arguments and the seed: the same call returns the same world.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .files import content_sha256, load_with_card, save_with_card
from .runtime import check_positive_int

# --------------------------------------------------------------------------------------------------------
# Fixed vocabularies. Names are made-up words, so no reader's own knowledge helps or hurts, and every name
# is one token for the word-level tokenizer.
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z")
_VOWELS = ("a", "e", "i", "o", "u")


def _syllable_names(codas: Sequence[str], count: int) -> tuple[str, ...]:
    names = [
        (o1 + v1 + o2 + v2 + c).capitalize()
        for o1 in _ONSETS
        for v1 in _VOWELS
        for o2 in _ONSETS
        for v2 in _VOWELS
        for c in codas
    ]
    step = len(names) // count  # spread the picks so neighbouring names differ in their first letters
    return tuple(names[i * step] for i in range(count))


FIRST_NAMES = _syllable_names(("",), 120)  # e.g. "Babe", "Bafi", ... two syllables
LAST_NAMES = _syllable_names(("n", "r", "s"), 120)  # e.g. "Baban", ... end in a consonant

CITIES = (
    "Lisbon Nairobi Osaka Lima Oslo Quito Dakar Hanoi Perth Tunis Accra Bergen Cairo Delhi Geneva Havana "
    "Kyoto Lagos Madrid Manila Milan Munich Porto Prague Riga Rome Seoul Sofia Tallinn Tokyo Turin Vienna "
    "Warsaw Zagreb Zurich Athens Beirut Bogota Boston Chennai Dublin Denver Hamburg Helsinki Istanbul "
    "Jakarta Krakow Lyon Marseille Montreal"
).split()
UNIVERSITIES = (
    "Oxford Harvard Stanford Cambridge Princeton Yale Columbia Cornell Berkeley Caltech Toronto Sorbonne "
    "Heidelberg Leiden Uppsala Bologna Salamanca Edinburgh Glasgow Padua Tsinghua Peking Fudan Waseda Keio "
    "Monash Melbourne McGill Brown Duke"
).split()
EMPLOYERS = (
    "Acme Boreal Cobalt Dynamo Ember Fathom Granite Harbor Indigo Juniper Kestrel Lumen Meridian Nimbus "
    "Onyx Pinnacle Quarry Redwood Summit Tundra Umbra Vertex Willow Xenon Yarrow Zephyr Anvil Beacon "
    "Cascade Delta Echo Falcon Glacier Horizon Iris Jasper Keystone Lantern Mosaic Nova"
).split()
YEARS = tuple(str(y) for y in range(1940, 2000))


@dataclass(frozen=True)
class Attribute:
    """One kind of fact about a person: its name, its possible values and the sentences that state it.

    Every template ends with ``{value}``, so the words before it are a prompt whose next token is the answer.
    """

    name: str
    values: tuple[str, ...]
    templates: tuple[str, ...]


ATTRIBUTES: dict[str, Attribute] = {
    a.name: a
    for a in (
        Attribute(
            "birth_city",
            tuple(CITIES),
            (
                "{name} was born in {value}",
                "{name} came into the world in {value}",
                "the birthplace of {name} is {value}",
                "{name} spent the first years of life in {value}",
                "{name} is a native of {value}",
                "the city where {name} was born is {value}",
            ),
        ),
        Attribute(
            "birth_year",
            YEARS,
            (
                "the birth year of {name} is {value}",
                "{name} has a birth year of {value}",
                "{name} arrived in the year {value}",
                "{name} first saw daylight in the year {value}",
                "records list {name} as born in {value}",
                "the year {name} was born is {value}",
            ),
        ),
        Attribute(
            "university",
            tuple(UNIVERSITIES),
            (
                "{name} studied at {value}",
                "{name} graduated from {value}",
                "the alma mater of {name} is {value}",
                "{name} received a degree from {value}",
                "{name} was a student at {value}",
                "the university {name} attended is {value}",
            ),
        ),
        Attribute(
            "employer",
            tuple(EMPLOYERS),
            (
                "{name} works for {value}",
                "{name} is employed by {value}",
                "the employer of {name} is {value}",
                "{name} earns a salary from {value}",
                "{name} has a job at {value}",
                "the company {name} works for is {value}",
            ),
        ),
    )
}
MAX_TEMPLATES = min(len(a.templates) for a in ATTRIBUTES.values())


@dataclass(frozen=True)
class World:
    """A set of people, the true value of each of their attributes, and how often each person is seen.

    ``exposures[i]`` is the number of training documents (biographies) about person ``i``; zero means the
    person is never seen and every answer about them is a guess.
    """

    names: tuple[str, ...]
    attributes: tuple[str, ...]
    values: tuple[tuple[str, ...], ...]  # values[i][j]: person i's value of attributes[j]
    exposures: tuple[int, ...]
    n_templates: int
    seed: int
    schedule: str
    card: dict = field(default_factory=dict, compare=False)

    @property
    def n_people(self) -> int:
        return len(self.names)

    def facts(self) -> pd.DataFrame:
        """One row per (person, attribute): the tidy table of ground truth with each fact's exposure count."""
        rows = [
            {
                "person": i,
                "name": self.names[i],
                "attribute": attr,
                "value": self.values[i][j],
                "exposures": self.exposures[i],
            }
            for i in range(self.n_people)
            for j, attr in enumerate(self.attributes)
        ]
        return pd.DataFrame(rows)

    def value(self, person: int, attribute: str) -> str:
        return self.values[person][self.attributes.index(attribute)]

    def templates(self, attribute: str) -> tuple[str, ...]:
        """The paraphrase templates of ``attribute`` that this world's corpus uses."""
        return ATTRIBUTES[attribute].templates[: self.n_templates]

    def vocabulary(self) -> list[str]:
        """Every string that can appear in this world's text: names, values and template text."""
        words: list[str] = ["."]  # the sentence separator of biographies
        words += FIRST_NAMES + LAST_NAMES
        for attr in self.attributes:
            words += ATTRIBUTES[attr].values
            words += [t.replace("{name}", " ").replace("{value}", " ") for t in ATTRIBUTES[attr].templates]
        return words

    def to_dict(self) -> dict:
        return {
            "names": list(self.names),
            "attributes": list(self.attributes),
            "values": [list(v) for v in self.values],
            "exposures": list(self.exposures),
            "n_templates": self.n_templates,
            "seed": self.seed,
            "schedule": self.schedule,
        }

    def checksum(self) -> str:
        """SHA-256 of the world's canonical JSON: two worlds with the same facts have the same checksum."""
        return content_sha256(self.to_dict())


# --------------------------------------------------------------------------------------------------------
# Exposure schedules: how many documents each person gets.


def bucket_exposures(buckets: Sequence[int], per_bucket: int) -> np.ndarray:
    """``per_bucket`` people at each exposure count in ``buckets`` (chapter 2.1's controlled design)."""
    per_bucket = check_positive_int("per_bucket", per_bucket)
    if len(buckets) == 0:
        raise ValueError("buckets must name at least one exposure count, e.g. (0, 1, 2, 4)")
    for b in buckets:
        check_positive_int("buckets[i]", b, allow_zero=True)
    return np.repeat(np.asarray(buckets, dtype=np.int64), per_bucket)


def zipf_exposures(n_people: int, exponent: float = 1.2, max_exposures: int = 64, seed: int = 0) -> np.ndarray:
    """Long-tailed exposure counts: P(k) ∝ k^-exponent for k in 1..max_exposures (chapters 2.1 and 2.2).

    This is the shape of entity frequencies in web text: a few people are everywhere, most appear once.
    """
    n_people = check_positive_int("n_people", n_people)
    max_exposures = check_positive_int("max_exposures", max_exposures)
    if not isinstance(exponent, (int, float)) or exponent <= 0:
        raise ValueError(f"exponent must be a positive number; got {exponent!r}")
    k = np.arange(1, max_exposures + 1)
    p = k ** (-float(exponent))
    rng = np.random.default_rng(seed)
    return rng.choice(k, size=n_people, p=p / p.sum()).astype(np.int64)


# --------------------------------------------------------------------------------------------------------
# Worlds


def make_world(
    exposures: Sequence[int] | np.ndarray,
    *,
    seed: int = 0,
    n_templates: int = 4,
    attributes: Sequence[str] | None = None,
    schedule: str = "custom",
) -> World:
    """Draw a world with one person per entry of ``exposures``; each gets a unique name and random values.

    People are shuffled so that the exposure count is independent of name and values.
    """
    exposures = np.asarray(exposures)
    if exposures.ndim != 1 or exposures.size == 0:
        raise ValueError("exposures must be a non-empty 1-D sequence of counts (one per person)")
    if exposures.dtype.kind not in "iu" or (exposures < 0).any():
        raise ValueError("exposures must hold non-negative integers")
    n_templates = check_positive_int("n_templates", n_templates)
    if n_templates > MAX_TEMPLATES:
        raise ValueError(f"n_templates must be between 1 and {MAX_TEMPLATES}; got {n_templates}")
    attributes = tuple(ATTRIBUTES) if attributes is None else tuple(attributes)
    unknown = [a for a in attributes if a not in ATTRIBUTES]
    if unknown or not attributes:
        raise ValueError(f"attributes must be a non-empty subset of {tuple(ATTRIBUTES)}; got {attributes!r}")
    n = exposures.size
    capacity = len(FIRST_NAMES) * len(LAST_NAMES)
    if n > capacity:
        raise ValueError(f"a world holds at most {capacity} people; got {n} exposure counts")

    rng = np.random.default_rng(seed)
    flat = rng.choice(capacity, size=n, replace=False)
    names = tuple(f"{FIRST_NAMES[i // len(LAST_NAMES)]} {LAST_NAMES[i % len(LAST_NAMES)]}" for i in flat)
    columns = [rng.choice(ATTRIBUTES[a].values, size=n) for a in attributes]
    values = tuple(tuple(str(col[i]) for col in columns) for i in range(n))
    order = rng.permutation(n)
    world = World(
        names=names,
        attributes=attributes,
        values=values,
        exposures=tuple(int(x) for x in exposures[order]),
        n_templates=n_templates,
        seed=int(seed),
        schedule=schedule,
    )
    return _with_card(world)


def _with_card(world: World) -> World:
    exp = np.asarray(world.exposures)
    card = {
        "what": "A synthetic world of made-up people and their attributes, for measuring recall vs exposure.",
        "how": "halluc_lib.core.world.make_world: unique syllable names; each attribute value drawn uniformly "
        "from a fixed list; each exposure renders one biography from random paraphrase templates.",
        "seed": world.seed,
        "schedule": world.schedule,
        "people": world.n_people,
        "attributes": list(world.attributes),
        "templates_per_attribute": world.n_templates,
        "documents": int(exp.sum()),
        "never_seen_people": int((exp == 0).sum()),
        "seen_once_people": int((exp == 1).sum()),
        "sha256": world.checksum(),
    }
    object.__setattr__(world, "card", card)
    return world


def bucket_world(buckets: Sequence[int], per_bucket: int, *, seed: int = 0, n_templates: int = 4) -> World:
    """A world with ``per_bucket`` people at each exposure count in ``buckets``."""
    return make_world(
        bucket_exposures(buckets, per_bucket),
        seed=seed,
        n_templates=n_templates,
        schedule=f"buckets {list(buckets)} x {per_bucket}",
    )


def render_biography(world: World, person: int, rng: np.random.Generator) -> str:
    """One document about ``person``: every attribute stated once, in random order and random templates."""
    order = rng.permutation(len(world.attributes))
    sentences = []
    for j in order:
        attr = world.attributes[j]
        template = world.templates(attr)[rng.integers(world.n_templates)]
        sentences.append(template.format(name=world.names[person], value=world.values[person][j]) + " .")
    return " ".join(sentences)


def build_corpus(world: World, seed: int = 0) -> list[str]:
    """The training corpus: ``exposures[i]`` biographies of each person ``i``, in shuffled order."""
    if world.n_people == 0:
        raise ValueError("world is empty: it has no people")
    rng = np.random.default_rng(seed)
    people = np.repeat(np.arange(world.n_people), world.exposures)
    rng.shuffle(people)
    return [render_biography(world, int(p), rng) for p in people]


@dataclass(frozen=True)
class Probe:
    """A question with a known answer: ``prompt`` is followed by ``answer`` in a true sentence."""

    person: int
    attribute: str
    prompt: str
    answer: str
    exposures: int
    template: int


def make_probes(world: World, people: Sequence[int] | None = None, templates: Sequence[int] = (0,)) -> list[Probe]:
    """Cloze questions for every (person, attribute, template): the template's words before ``{value}``."""
    if world.n_people == 0:
        raise ValueError("world is empty: it has no people")
    people = range(world.n_people) if people is None else people
    for t in templates:
        if not 0 <= t < world.n_templates:
            raise ValueError(f"templates must be indices in [0, {world.n_templates}); got {t}")
    probes = []
    for p in people:
        for j, attr in enumerate(world.attributes):
            for t in templates:
                stem = world.templates(attr)[t].split("{value}")[0].rstrip()
                probes.append(
                    Probe(
                        person=int(p),
                        attribute=attr,
                        prompt=stem.format(name=world.names[p]),
                        answer=world.values[p][j],
                        exposures=world.exposures[p],
                        template=int(t),
                    )
                )
    return probes


# --------------------------------------------------------------------------------------------------------
# Saving and loading, with a checksum so that a changed or corrupted file is refused.


def save_world(world: World, path: str | os.PathLike) -> Path:
    """Save ``world`` as JSON with its data card (which holds the checksum) and a Markdown data card beside it."""
    return save_with_card(path, world.to_dict(), world.card, key="world", indent=1)


def load_world(path: str | os.PathLike) -> World:
    """Load a world saved by :func:`save_world`, refusing it if its checksum does not match its contents."""
    w, _ = load_with_card(path, "world", key="world")
    world = World(
        names=tuple(w["names"]),
        attributes=tuple(w["attributes"]),
        values=tuple(tuple(v) for v in w["values"]),
        exposures=tuple(int(x) for x in w["exposures"]),
        n_templates=int(w["n_templates"]),
        seed=int(w["seed"]),
        schedule=w["schedule"],
    )
    return _with_card(world)
