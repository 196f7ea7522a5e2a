import json

import numpy as np
import pytest

from halluc_lib.core import world


def test_names_are_unique_single_words():
    assert len(set(world.FIRST_NAMES)) == len(world.FIRST_NAMES) == 120
    assert len(set(world.LAST_NAMES)) == len(world.LAST_NAMES) == 120
    assert not set(world.FIRST_NAMES) & set(world.LAST_NAMES)
    assert all(" " not in n for n in world.FIRST_NAMES + world.LAST_NAMES)


def test_templates_end_with_value_and_prompts_do_not_collide():
    stems = {}
    for attr in world.ATTRIBUTES.values():
        for t in attr.templates:
            assert t.endswith("{value}") and t.count("{name}") == 1
            stems.setdefault(t.split("{value}")[0], set()).add(attr.name)
    assert all(len(v) == 1 for v in stems.values()), "a prompt must identify its attribute"


def test_world_is_deterministic_and_matches_schedule():
    a = world.bucket_world((0, 1, 2), per_bucket=5, seed=1)
    b = world.bucket_world((0, 1, 2), per_bucket=5, seed=1)
    c = world.bucket_world((0, 1, 2), per_bucket=5, seed=2)
    assert a == b and a.checksum() == b.checksum() != c.checksum()
    assert sorted(a.exposures) == [0] * 5 + [1] * 5 + [2] * 5
    assert len(set(a.names)) == a.n_people == 15
    assert a.card["documents"] == 15 and a.card["never_seen_people"] == 5


def test_facts_table_is_tidy(tiny_world):
    facts = tiny_world.facts()
    assert len(facts) == tiny_world.n_people * len(tiny_world.attributes)
    assert set(facts.columns) == {"person", "name", "attribute", "value", "exposures"}
    row = facts.iloc[0]
    assert tiny_world.value(row.person, row.attribute) == row.value


def test_corpus_has_one_biography_per_exposure(tiny_world):
    corpus = world.build_corpus(tiny_world, seed=0)
    assert len(corpus) == sum(tiny_world.exposures)
    for i, name in enumerate(tiny_world.names):
        assert sum(f"{name} " in doc for doc in corpus) == tiny_world.exposures[i]
    assert corpus == world.build_corpus(tiny_world, seed=0)
    # each biography states every attribute of its person once
    doc = corpus[0]
    assert doc.count(" .") == len(tiny_world.attributes)


def test_probes_are_true_sentence_prefixes(tiny_world):
    corpus = world.build_corpus(tiny_world)
    probes = world.make_probes(tiny_world, templates=(0, 1))
    assert len(probes) == tiny_world.n_people * len(tiny_world.attributes) * 2
    seen = [p for p in probes if p.exposures > 0]
    assert any(f"{p.prompt} {p.answer} ." in " ".join(corpus) for p in seen)
    with pytest.raises(ValueError, match="templates must be indices"):
        world.make_probes(tiny_world, templates=(5,))


def test_exposure_schedules():
    assert list(world.bucket_exposures((0, 2), 2)) == [0, 0, 2, 2]
    z = world.zipf_exposures(2000, exponent=1.2, max_exposures=64, seed=0)
    assert z.min() >= 1 and z.max() <= 64
    assert (z == 1).mean() > (z == 2).mean() > (z == 8).mean()
    assert np.array_equal(z, world.zipf_exposures(2000, exponent=1.2, max_exposures=64, seed=0))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"exposures": []}, "exposures must be a non-empty"),
        ({"exposures": [1, -1]}, "non-negative integers"),
        ({"exposures": [1], "n_templates": 0}, "n_templates must be > 0"),
        ({"exposures": [1], "n_templates": 99}, "n_templates must be between 1 and"),
        ({"exposures": [1], "attributes": ["height"]}, "attributes must be a non-empty subset"),
        ({"exposures": [1] * 20000}, "a world holds at most"),
    ],
)
def test_make_world_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        world.make_world(**kwargs)


def test_schedule_bad_input():
    with pytest.raises(ValueError, match="per_bucket"):
        world.bucket_exposures((1,), 0)
    with pytest.raises(ValueError, match="buckets must name"):
        world.bucket_exposures((), 3)
    with pytest.raises(ValueError, match="exponent"):
        world.zipf_exposures(10, exponent=0)
    with pytest.raises(ValueError, match="n_people"):
        world.zipf_exposures(0)


def test_empty_world_is_rejected():
    empty = world.World((), ("birth_city",), (), (), 1, 0, "none")
    with pytest.raises(ValueError, match="world is empty"):
        world.build_corpus(empty)
    with pytest.raises(ValueError, match="world is empty"):
        world.make_probes(empty)


def test_save_load_roundtrip_and_checksum(tmp_path, tiny_world):
    path = world.save_world(tiny_world, tmp_path / "w.json")
    assert path.with_suffix(".md").read_text().startswith("# Data card")
    loaded = world.load_world(path)
    assert loaded == tiny_world and loaded.card["sha256"] == tiny_world.checksum()
    payload = json.loads(path.read_text())
    payload["world"]["values"][0][0] = "Atlantis"
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="checksum mismatch"):
        world.load_world(path)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="is not a world file"):
        world.load_world(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="path: no world file"):
        world.load_world(tmp_path / "missing.json")
