from halluc_lib.datasets import qa


def test_qa_documents_state_the_answer(tiny_world):
    docs = qa.qa_documents(tiny_world, [0])
    probes = qa.qa_probes(tiny_world, [0])
    assert len(docs) == len(tiny_world.attributes)
    for doc, p in zip(docs, probes, strict=True):
        assert doc == f"{p.prompt} {p.answer} ."
        assert p.prompt.startswith("question :") and p.prompt.endswith("answer :")
