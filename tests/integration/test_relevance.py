"""model.explain: one relevance map per answer for every local family, and the saliency sanity checks on models
trained on the phantom benchmark (the generator's findings masks are the ground truth)."""
import numpy as np
import pytest

import medvqa
from medvqa import maps
from medvqa.models import local_family_names
from medvqa.models._requests import ExplainUnavailable, InputError
from tests.conftest import noise_image


@pytest.mark.parametrize("family", local_family_names())
def test_every_family_explains_its_answer_with_a_map_over_the_whole_image(zoo, family):
    model = medvqa.load_model(f"{family}-tiny")
    image = noise_image(3, size=(96, 72))  # not square: the map must come back at the image's own size
    first = model.explain(image, "is there a mass?")
    assert first.shape == (72, 96) and first.dtype == np.float32
    assert first.min() >= 0 and first.max() == pytest.approx(1.0)
    assert np.allclose(first, model.explain(image, "is there a mass?"), atol=1e-5)  # deterministic
    other = model.explain(image, "is there a mass?", answer="left")
    assert not np.allclose(first, other)  # another answer, another gradient
    assert model.answer(image, "is there a mass?").text  # the handle still answers after a backward pass


def test_vilt_cannot_explain_an_answer_outside_its_vocabulary(zoo):
    with pytest.raises(InputError, match="not among vilt-tiny's answers"):
        medvqa.load_model("vilt-tiny").explain(noise_image(0), "is there a mass?", answer="pneumothorax")


def test_a_served_model_says_maps_are_not_available(scratch_zoo):
    from medvqa import serving
    from medvqa.types import ModelSpec

    serving.register([ModelSpec(name="remote@served", family="served", base="http://127.0.0.1:9",
                                extra={"served_model": "llava"})], scratch_zoo)
    with pytest.raises(ExplainUnavailable, match="not available for served models"):
        medvqa.load_model("remote@served").explain(noise_image(0), "is there a mass?", "yes")


def test_the_phantom_mask_is_where_the_findings_were_drawn():
    from medvqa.data.phantom_images import draw, draw_with_mask, sample_truth

    rng = np.random.default_rng(5)
    truth = sample_truth(rng, "brain-mri")
    while truth.count < 2:
        truth = sample_truth(rng, "brain-mri")
    state = rng.bit_generator.state
    image, mask = draw_with_mask(truth, rng)
    rng.bit_generator.state = state
    assert np.array_equal(np.asarray(draw(truth, rng)), np.asarray(image))  # the benchmark's images are unchanged
    grey = np.asarray(image.convert("L"), dtype=float)
    assert 0.005 < mask.mean() < 0.1
    assert grey[mask].mean() > grey[~mask].mean() + 60  # the masses are hyperintense
    image_left = mask[:, :64].sum() > mask[:, 64:].sum()
    assert image_left == (truth.side == "right")  # radiological convention


@pytest.fixture(scope="module")
def phantom_trained(tmp_path_factory):
    """Every local family trained on the phantom benchmark by the zoo's own recipes, shortened (100 steps)."""
    import os

    from medvqa import data
    from medvqa.zoo.trained import build_trained

    root = tmp_path_factory.mktemp("phantom_zoo")
    saved = {k: os.environ.get(k) for k in ("MEDVQA_CHECKPOINTS", "MEDVQA_DATA_CACHE")}
    os.environ["MEDVQA_CHECKPOINTS"] = str(root)
    os.environ["MEDVQA_DATA_CACHE"] = str(tmp_path_factory.mktemp("phantom_data"))
    try:
        data.prepare("phantom", sizes={"train": 600, "validation": 20, "test": 20})
        build_trained(root, steps=100, eval_limit=8, progress=lambda message: None)
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    return root
