import pandas as pd
import pytest
import torch

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


def test_south_list_removes_exactly_the_share_of_south_errors_it_covers():
    """The list is written by the generator, not learned: for a model that gives every note the northern reading
    (what the no-header model does), constrained decoding removes the share of south errors the list covers —
    dictionary_coverage, at least half — and leaves north notes alone. Chapter 5.2 quotes it as a property of the
    list, not as a claim."""
    coverage = medicine.Config().dictionary_coverage
    rows = [(a, r, f) for a in medicine.ABBREVIATIONS for r in medicine.REGIONS for f in medicine.FILLERS]
    northern = pd.DataFrame(
        {
            "abbreviation": [a for a, _, _ in rows],
            "region": [r for _, r, _ in rows],
            "filler": [f for _, _, f in rows],
            "answer": [medicine.expansion(a, "north") for a, _, _ in rows],
            "confidence": 0.9,
            "correct": [r == "north" for _, r, _ in rows],
            "majority_reading": True,
        }
    )
    south = northern.region == "south"
    for seed in range(5):
        data = medicine.make_data(medicine.Config(n_notes=50, n_drugs=20, n_formulary=10), seed=seed)
        fixed = medicine.with_dictionary(northern, data.dictionary)
        removed = 1 - (1 - fixed[south].correct.mean()) / (1 - northern[south].correct.mean())
        assert removed == pytest.approx(coverage) and removed >= 0.5
        assert fixed[~south].equals(northern[~south])


def test_dose_accuracy_by_mentions_on_a_known_case():
    doses = pd.DataFrame(
        {
            "mentions": [0, 0, 0, 0, 1, 1, 5, 5],
            "open_book": [False, False, True, True, False, True, False, True],
            "correct": [False, True, True, True, False, True, True, False],
        }
    )
    by_mentions = medicine.dose_accuracy_by_mentions(doses)
    assert by_mentions.to_dict("index") == {
        "0": {"closed book": 0.5, "with the formulary": 1.0},
        "1": {"closed book": 0.0, "with the formulary": 1.0},
        "4-7": {"closed book": 1.0, "with the formulary": 0.0},
    }


def test_run_medicine_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("HALLUC_CACHE", str(tmp_path))
    config = medicine.Config(n_notes=200, n_drugs=20, n_formulary=20, steps=3, batch_size=16, size=ModelSize(2, 32, 4))
    run = medicine.run(config, seed=0, device="cpu")
    assert set(run.models) == {"no header", "header", "untrained"}
    assert len(run.expansions) == 3 * len(medicine.ABBREVIATIONS) * 2 * len(medicine.FILLERS)
    header = run.expansions[run.expansions.model == "header"]
    table = medicine.summarize_expansions(header)
    south = header[header.region == "south"]
    assert table.loc["south", "accuracy"] == pytest.approx(south.correct.mean())
    assert table.loc["south", "northern_reading"] == pytest.approx(south.majority_reading.mean())
    # confidence is the answer's share of the two readings: never below one half
    assert (run.expansions.confidence >= 0.5).all()
    # the null model: a function of the seed, untouched by pretraining, and with no preference between readings
    again = medicine.untrained_notes_model(run.tokenizer, config, seed=0).state_dict()
    untrained = run.models["untrained"].state_dict()
    assert again.keys() == untrained.keys() and all(torch.equal(again[k], untrained[k]) for k in again)
    assert not torch.equal(again["transformer.wte.weight"], run.models["header"].state_dict()["transformer.wte.weight"])
    assert run.expansions[run.expansions.model == "untrained"].confidence.mean() < 0.7
    # a dose's confidence is the largest of ten probabilities, so at least a tenth; both models ask every drug twice
    for doses in (run.doses, run.untrained_doses):
        assert (doses.confidence >= 1 / len(medicine.DOSES) - 1e-6).all()
        assert len(doses) == 2 * len(run.data.drugs) and doses.open_book.sum() == len(run.data.drugs)
    wrong = medicine.ask_wrong_formulary(run.models["header"], run.tokenizer, run.data.drugs, min_mentions=1)
    assert len(wrong) == (run.data.drugs.mentions >= 1).sum() and (wrong.formulary_dose != wrong.dose).all()
    assert wrong.follows_formulary.equals(wrong.answer == wrong.formulary_dose)
    with pytest.raises(ValueError, match="shift"):
        medicine.ask_wrong_formulary(run.models["header"], run.tokenizer, run.data.drugs, shift=10)
    with pytest.raises(ValueError, match="no drug is mentioned 99 times"):
        medicine.ask_wrong_formulary(run.models["header"], run.tokenizer, run.data.drugs, min_mentions=99)


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
