"""A prepared dataset whose rows lack images: the Samples page opens on it and the runner refuses it plainly."""
import pytest


def test_a_dataset_whose_rows_lack_images_opens_and_is_refused_for_evaluation(app, private_store, tmp_path,
                                                                              monkeypatch):
    from datasets import Dataset, DatasetDict

    from medvqa.data.loaders import qa_features
    from medvqa.datatypes import MedVQAError
    from medvqa.evaluation import evaluate
    from medvqa.store import Store
    from tests.integration.test_store import identity, prediction

    monkeypatch.setenv("MEDVQA_DATA_CACHE", str(tmp_path / "cache"))
    rows = [{"id": f"s{i}", "image_id": f"img-s{i}", "image": None, "question": f"question s{i}", "answer": "yes",
             "answer_type": "closed", "question_type": "presence", "template": "", "modality": "ct",
             "organ": "chest", "split": "test", "dataset": "slake"} for i in (1, 2)]
    DatasetDict({"test": Dataset.from_list(rows, features=qa_features())}).save_to_disk(tmp_path / "cache" / "slake")
    store = Store(private_store)
    run_id, _ = store.open_run(identity("vilt-tiny", dataset="slake"))
    store.add_predictions(run_id, [prediction("s1", "yes", "yes"), prediction("s2", "yes", "no")])
    store.finish_run(run_id, [])
    app.switch_page("views/samples.py").run()
    assert not app.exception
    assert sum("has no image" in c.value for c in app.caption) == 2
    assert not [b for b in app.button if b.key and b.key.startswith("samples-open-")]  # nothing to open in Compare
    with pytest.raises(MedVQAError, match="2 of 2 samples of slake/test have no image"):
        evaluate("vilt-tiny", "slake", progress=False)
