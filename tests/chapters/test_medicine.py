import pandas as pd
import pytest

from halluc_lib.chapters import medicine
from halluc_lib.core.files import load_with_card
from halluc_lib.core.recipes import ModelSize


def test_expansions_differ_by_hospital_and_first_words_tell_them_apart():
    for abbreviation, (north, south) in medicine.ABBREVIATIONS.items():
        assert medicine.expansion(abbreviation, "north") == north != south
        assert north.split()[0] != south.split()[0]  # the probe reads the first word
    with pytest.raises(ValueError, match="region must be one of"):
        medicine.expansion("ms", "east")
    with pytest.raises(ValueError, match="abbreviation must be one of"):
        medicine.expansion("xyz", "north")


def test_notes_follow_the_south_share_and_headers_name_the_hospital():
    frame = medicine.notes(2000, south_share=0.1, seed=1)
    assert 0.07 < (frame.region == "south").mean() < 0.13
    with_header = medicine.note_texts(frame.iloc[:3], header=True)
    without = medicine.note_texts(frame.iloc[:3], header=False)
    assert all("hospital" in t for t in with_header) and not any("hospital" in t for t in without)
    row = frame.iloc[0]
    assert with_header[0].endswith(medicine.expansion(row.abbreviation, row.region) + " .")
    with pytest.raises(ValueError, match="south_share"):
        medicine.notes(5, south_share=2)


def test_data_and_corpus_are_a_function_of_the_seed():
    config = medicine.Config(n_notes=50, n_drugs=20, n_formulary=10, max_mentions=4)
    a, b = medicine.make_data(config, seed=3), medicine.make_data(config, seed=3)
    assert a.drugs.equals(b.drugs) and medicine.corpus(a, True, seed=3) == medicine.corpus(b, True, seed=3)
    texts = medicine.corpus(a, header=False)
    assert len(texts) == 50 + a.drugs.mentions.sum() + 10 and (a.drugs.mentions == 0).sum() == 100
    assert not set(a.drugs.drug) & set(a.formulary.drug)  # formulary passages are about other drugs
    assert len(a.dictionary) == 6 and all(a.dictionary[k] == medicine.expansion(k, "south") for k in a.dictionary)


def test_drug_names_are_distinct_words():
    names = medicine.drug_names(200, seed=0)
    assert len(set(names)) == 200 and all(n.isalpha() and n.islower() for n in names)


def test_config_checks():
    with pytest.raises(ValueError, match="steps"):
        medicine.Config(steps=0)
    with pytest.raises(ValueError, match="dictionary_coverage"):
        medicine.Config(dictionary_coverage=1.5)
    assert medicine.Config.for_scale("full").n_notes > medicine.Config().n_notes
    with pytest.raises(TypeError, match="config must be a medicine.Config"):
        medicine.run({})


def test_dictionary_fixes_only_listed_abbreviations_in_its_hospital():
    answers = pd.DataFrame(
        {
            "abbreviation": ["ms", "pe", "ms"],
            "region": ["south", "south", "north"],
            "answer": ["multiple sclerosis", "pulmonary embolism", "multiple sclerosis"],
            "confidence": [0.9, 0.9, 0.9],
            "correct": [False, False, True],
            "majority_reading": [True, True, True],
        }
    )
    fixed = medicine.with_dictionary(answers, {"ms": "mitral stenosis"})
    assert fixed.correct.tolist() == [True, False, True] and fixed.confidence.iloc[0] == 1.0


def test_run_medicine_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("HALLUC_CACHE", str(tmp_path))
    config = medicine.Config(n_notes=200, n_drugs=20, n_formulary=20, steps=3, batch_size=16, size=ModelSize(2, 32, 4))
    run = medicine.run(config, seed=0, device="cpu")
    table = medicine.summarize_expansions(run.expansions[run.expansions.model == "header"])
    assert list(table.index) == ["north", "south"] and table.accuracy.between(0, 1).all()
    assert len(run.expansions) == 2 * len(medicine.ABBREVIATIONS) * 2 * len(medicine.FILLERS)
    by_mentions = medicine.dose_accuracy_by_mentions(run.doses)
    assert list(by_mentions.columns) == ["closed book", "with the formulary"]
    assert run.doses.confidence.between(0, 1).all()


def test_data_roundtrip_refuses_tampering(tmp_path):
    import json

    config = medicine.Config(n_notes=30, n_drugs=10, n_new_drugs=2, n_formulary=5, max_mentions=3)
    data = medicine.make_data(config, seed=0)
    path = medicine.save_data(data, config, tmp_path / "med.json")
    payload, card = load_with_card(path, "medicine data")
    loaded = medicine.data_from_payload(payload)
    assert loaded.drugs.equals(data.drugs) and loaded.dictionary == data.dictionary
    assert card["sizes"] == {"notes": 30, "drugs": 12, "formulary": 5}
    payload = json.loads(path.read_text())
    payload["data"]["drugs"]["dose"][0] = "999"
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_with_card(path, "medicine data")
