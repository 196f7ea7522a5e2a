"""Question–answer pairs about the biography world (chapters 4.4 and 4.6).

The same facts as the biographies, asked in a question format the biographies never use, so that answering
is a skill learned from QA examples and knowing is a property of pretraining.
"""

from __future__ import annotations

from ..core.world import Probe, World

#: The question asked about each attribute, with ``{name}`` where the person's name goes.
QUESTIONS = {
    "birth_city": "question : where was {name} born ? answer :",
    "birth_year": "question : in which year was {name} born ? answer :",
    "university": "question : where did {name} study ? answer :",
    "employer": "question : who employs {name} ? answer :",
}


def qa_probes(world: World, people) -> list[Probe]:
    """One question per (person, attribute) in :data:`QUESTIONS`' form; the answer is the next token."""
    probes = []
    for p in people:
        for j, attr in enumerate(world.attributes):
            probes.append(
                Probe(
                    person=int(p),
                    attribute=attr,
                    prompt=QUESTIONS[attr].format(name=world.names[p]),
                    answer=world.values[p][j],
                    exposures=world.exposures[p],
                    template=-1,
                )
            )
    return probes


def qa_documents(world: World, people) -> list[str]:
    """Question-answer training documents: each question followed by its answer."""
    return [f"{p.prompt} {p.answer} ." for p in qa_probes(world, people)]


def qa_vocabulary() -> list[str]:
    """The question words, to extend a biography tokenizer with."""
    return [q.replace("{name}", " ") for q in QUESTIONS.values()]
