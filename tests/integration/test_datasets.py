"""Every loader on small fixture files in the real layouts, the phantom benchmark's guarantees, offline behaviour."""
import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from medvqa import data
from medvqa.data import phantom
from medvqa.data.sources import DatasetSourceError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVQA_DATA_CACHE", str(tmp_path / "cache"))
    return tmp_path


def jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.RandomState(seed).randint(0, 255, (24, 24, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


QA = [("Is there a pneumothorax?", "yes"), ("What organ is this?", "lung"), ("Is the heart enlarged?", "No"),
      ("Where is the lesion?", "right lower lobe")]


def hub_parquet_layout(root, splits):
    """The layout `hf download` gives for flaviagiammarino/vqa-rad and path-vqa: data/<split>-00000-of-00001.parquet."""
    from datasets import Dataset, Features, Value
    from datasets import Image as ImageFeature

    features = Features({"image": ImageFeature(), "question": Value("string"), "answer": Value("string")})
    (root / "data").mkdir(parents=True)
    for split in splits:
        rows = [{"image": {"bytes": jpeg(i), "path": None}, "question": q, "answer": a} for i, (q, a) in enumerate(QA)]
        Dataset.from_list(rows, features=features).to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
    return root


@pytest.mark.parametrize("name, splits", [("vqa-rad", ["train", "test"]), ("pathvqa", ["train", "validation", "test"]),
                                          ("slake", ["train", "validation", "test"])])
def test_parquet_layouts(cache, name, splits):
    source = hub_parquet_layout(cache / name, splits)
    data.prepare(name, str(source))
    for split in splits:
        samples = data.load(name, split=split)
        assert [(s.question, s.answer) for s in samples] == QA
        assert [s.answer_type for s in samples] == ["closed", "open", "closed", "open"]  # the yes/no rule
        assert all(s.dataset == name and s.split == split and s.image.mode == "RGB" for s in samples)
        assert samples[0].image_id == hashlib.sha1(jpeg(0)).hexdigest()[:16]


def test_slake_official_json_keeps_english_and_its_labels(cache):
    root = cache / "Slake1.0"
    (root / "imgs" / "xmlab1").mkdir(parents=True)
    (root / "imgs" / "xmlab1" / "source.jpg").write_bytes(jpeg(1))
    row = {"img_id": 1, "img_name": "xmlab1/source.jpg", "location": "Lung", "modality": "CT",
           "answer_type": "CLOSED", "base_type": "vqa", "content_type": "Abnormality"}
    rows = [{**row, "qid": 10, "question": "Is the lung healthy?", "answer": "No", "q_lang": "en"},
            {**row, "qid": 11, "question": "肺部健康吗?", "answer": "不", "q_lang": "zh"},
            {**row, "qid": 12, "question": "Which organ is abnormal?", "answer": "Lung", "q_lang": "en",
             "answer_type": "OPEN", "content_type": "Organ"}]
    for file_name in ("train.json", "validate.json", "test.json"):
        (root / file_name).write_text(json.dumps(rows, ensure_ascii=False))
    data.prepare("slake", str(root))
    samples = data.load("slake", split="validation")
    assert [s.question for s in samples] == ["Is the lung healthy?", "Which organ is abnormal?"]
    assert [(s.answer_type, s.question_type, s.modality, s.organ) for s in samples] == [
        ("closed", "Abnormality", "CT", "Lung"), ("open", "Organ", "CT", "Lung")]
    assert samples[0].id == "slake-10"


def test_roco_imagefolder_captions(cache):
    root = cache / "roco"
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        for i in range(3):
            (root / split / f"img{i}.jpg").write_bytes(jpeg(i))
        (root / split / "metadata.csv").write_text("file_name,caption\n" + "".join(
            f"img{i}.jpg,CT scan showing finding {i}\n" for i in range(3)))
    data.prepare("roco", str(root))
    captions = data.load("roco", split="train")
    assert sorted(c.caption for c in captions) == [f"CT scan showing finding {i}" for i in range(3)]


def test_probe_attaches_nonsense_questions_to_real_images(cache):
    samples = data.load("probe")
    assert len(samples) >= 30 and {s.answer for s in samples} == {"unanswerable"}
    assert {s.modality for s in samples} >= {"ct", "mr"}
    assert all(s.question_type == "PROBE" for s in samples)


def test_offline_hub_id_fails_fast_with_the_local_alternative(cache):
    # offline, the hub is never tried: the error comes before any request (a request would fail differently)
    with pytest.raises(DatasetSourceError, match=r"\(offline\).*hf download flaviagiammarino/vqa-rad"):
        data.prepare("vqa-rad")
    with pytest.raises(DatasetSourceError, match="not prepared"):
        data.load("pathvqa")


def test_seeded_limit_and_prepared_once(cache):
    data.prepare("pathvqa", str(hub_parquet_layout(cache / "pv", ["test"])))
    a = [s.id for s in data.load("pathvqa", limit=2, seed=1)]
    assert len(a) == 2 and a == [s.id for s in data.load("pathvqa", limit=2, seed=1)]
    assert {tuple(s.id for s in data.load("pathvqa", limit=2, seed=k)) for k in range(6)} != {tuple(a)}
    with pytest.raises(DatasetSourceError, match="no split 'train'"):
        data.load("pathvqa", split="train")


def test_phantom_is_deterministic_and_splits_share_no_image():
    sizes = {"train": 40, "validation": 8, "test": 12}
    first, again = phantom.generate(sizes, seed=3), phantom.generate(sizes, seed=3)
    assert first == again
    assert phantom.generate(sizes, seed=4)["test"]["qa"] != first["test"]["qa"]
    hashes = {split: {hashlib.sha1(c["image"]["bytes"]).hexdigest() for c in rows["captions"]}
              for split, rows in first.items()}
    assert not (hashes["train"] & hashes["test"]) and not (hashes["train"] & hashes["validation"])
    assert not (hashes["validation"] & hashes["test"])


def test_phantom_balance_baseline_and_captions():
    rows = phantom.generate({"train": 800, "validation": 10, "test": 240}, seed=0)
    stats = phantom.statistics(rows)
    assert all(0.35 <= share <= 0.65 for share in stats["yes_share_per_template"].values()), stats
    assert stats["text_only_baseline_test"]["closed"] <= 0.60
    assert set(stats["question_type"]) == {"MODALITY", "PLANE", "ORGAN", "PRES", "ABN", "COUNT", "POS", "SIZE", "COLOR"}
    assert {r["modality"] for r in rows["train"]["qa"]} == {"x-ray", "ct", "mri", "pathology"}
    # the caption and the answers describe the same image
    by_image = {c["id"]: c["caption"] for c in rows["train"]["captions"]}
    for r in rows["train"]["qa"]:
        if r["template"] == "count-open" and r["answer"] != "0":
            number = ["", "one", "two", "three"][int(r["answer"])]
            assert f" {number} " in by_image[r["image_id"]]
        if r["template"] == "position-open":
            assert f"in the {r['answer']} part" in by_image[r["image_id"]]


def test_phantom_build_and_load_through_the_one_schema(cache):
    stats = phantom.build(cache / "cache" / "phantom", sizes={"train": 20, "validation": 4, "test": 8}, seed=0)
    test = data.load("phantom", split="test")
    assert len(test) == stats["questions"]["test"] and test[0].dataset == "phantom" and test[0].image.size == (128, 128)
    captions = data.load("phantom-captions", split="train")
    assert len(captions) == 20 and captions[0].caption.endswith(".")


def test_no_patient_tag_in_stored_rows(cache):
    import pydicom

    from medvqa import gallery
    from medvqa.data.loaders import folder_for

    data.prepare("probe")
    stored = b"".join(p.read_bytes() for p in folder_for("probe").rglob("*") if p.is_file())
    for item in gallery.available():
        ds = pydicom.dcmread(item.path())
        for tag in ("PatientName", "PatientID", "PatientBirthDate"):
            value = str(ds.get(tag, "")).strip()
            if len(value) >= 4:
                assert value.encode() not in stored, f"{tag} of {item.file} leaked into the prepared dataset"


def test_phantom_pairs_comparisons_in_train_only_and_labels_concepts():
    rows = phantom.generate({"train": 60, "validation": 4, "test": 60}, seed=1)
    paired = {t.key for t in phantom.TEMPLATES if t.paired}
    assert paired == {"modality-closed", "plane-closed", "side-closed", "region-closed", "size-closed", "colour-closed"}

    def answers_per_image_template(split):
        out = {}
        for r in rows[split]["qa"]:
            if r["template"] in paired:
                out.setdefault((r["image_id"], r["template"]), []).append(r["answer"])
        return out

    train = answers_per_image_template("train")
    assert train and all(sorted(a) == ["no", "yes"] for a in train.values())  # each comparison asked both ways
    assert all(len(a) == 1 for a in answers_per_image_template("test").values())  # test questions stay single
    caption = rows["train"]["captions"][0]
    concepts = dict(c.split(":") for c in caption["concepts"])
    assert set(concepts) == {"modality", "plane", "count", "side", "region", "size", "stain"}
    if concepts["count"] == "0":
        assert concepts["side"] == "none" and "no abnormality" in caption["caption"]
    assert all("masss" not in r["question"] for r in rows["train"]["qa"])


def test_a_page_of_samples_loads_by_id_and_decodes_only_those(phantom_data):
    from medvqa import data

    everything = {s.id: s for s in data.load("phantom", split="test")}
    wanted = sorted(everything)[5:8]
    page = data.load_ids("phantom", "test", [*wanted, "no-such-sample"])
    assert sorted(page) == wanted  # the unknown id is left out
    for sample_id, sample in page.items():
        assert sample == everything[sample_id]  # the same sample, image and all, as the whole split's load gives
    with pytest.raises(data.DatasetSourceError, match="not prepared"):
        data.load_ids("slake", "test", wanted)
