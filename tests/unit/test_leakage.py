"""`medvqa data check`: duplicates planted into a dataset (an exact copy, a resized and re-encoded copy, a changed
question on the same image, a repeated triplet) are found, and nothing else is."""
import io

import numpy as np
from PIL import Image

from medvqa.data import leakage
from medvqa.datatypes import Sample


def scan(seed: int) -> Image.Image:
    """A grey 128x128 image of a few soft blobs, different for every seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:128, 0:128]
    pixels = np.full((128, 128), 40.0)
    for _ in range(4):
        cy, cx, r = rng.uniform(20, 108), rng.uniform(20, 108), rng.uniform(8, 30)
        pixels += rng.uniform(60, 160) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r**2))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).convert("RGB")


def reencoded(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.resize((96, 96)).save(buffer, "JPEG", quality=75)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def sample(split, i, image, image_id, question="Is there a mass?", answer="yes"):
    return Sample(id=f"{split}-{i}", image=image, question=question, answer=answer, answer_type="closed",
                  split=split, dataset="planted", image_id=image_id)


def test_planted_duplicates_are_found_and_only_they_are_left_out():
    train = [sample("train", i, scan(i), f"t{i}", question=f"Question {i}?") for i in range(30)]
    test = [sample("test", 0, scan(0), "copy-of-t0", question="A different question?"),  # exact copy, new question
            sample("test", 1, reencoded(scan(1)), "smaller-t1", question="question 1"),  # same question, normalised
            *[sample("test", i, scan(100 + i), f"new{i}") for i in range(2, 20)],  # unseen images
            sample("test", 20, scan(102), "new2")]  # the (image, question, answer) of test-2 again
    report = leakage.find("planted", "fp", {"train": train, "test": test})
    pairs = {(d["image_id"], d["other_image_id"]) for d in report.near_duplicates}
    assert pairs == {("t0", "copy-of-t0"), ("t1", "smaller-t1")}
    assert report.same_question == [{"split": "test", "sample_id": "test-1", "other_split": "train",
                                     "other_sample_id": "train-1"}]
    assert report.repeated == {"train": [], "test": ["test-20"]}
    assert report.excluded["test"] == ["test-0", "test-1", "test-20"]
    assert report.images == {"train": 30, "test": 20}
    assert "2 images with a near-duplicate in another split" in report.summary()


def test_the_check_is_saved_beside_the_data_and_refused_when_stale(tmp_path):
    import pytest

    from medvqa.datatypes import MedVQAError

    report = leakage.find("planted", "fp-1", {"train": [sample("train", 0, scan(0), "a")],
                                              "test": [sample("test", 0, scan(0), "b")]})
    leakage.save(report, tmp_path)
    assert leakage.excluded(tmp_path, "planted", "test", "fp-1") == ["test-0"]
    with pytest.raises(MedVQAError, match="prepared again since its leakage check"):
        leakage.excluded(tmp_path, "planted", "test", "fp-2")
    with pytest.raises(MedVQAError, match="run `medvqa data check planted` first"):
        leakage.excluded(tmp_path / "elsewhere", "planted", "test", "fp-1")
