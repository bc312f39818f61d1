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
    own = model.answer(image, "is there a mass?").text
    other = model.explain(image, "is there a mass?", answer="left" if own != "left" else "right")
    assert not np.allclose(first, other)  # another answer, another gradient
    assert model.answer(image, "is there a mass?").text == own  # a backward pass changed nothing


def test_vilt_cannot_explain_an_answer_outside_its_vocabulary(zoo):
    with pytest.raises(InputError, match="not among vilt-tiny's answers"):
        medvqa.load_model("vilt-tiny").explain(noise_image(0), "is there a mass?", answer="pneumothorax")


def test_a_served_model_says_maps_are_not_available(scratch_zoo):
    from medvqa import serving
    from medvqa.datatypes import ModelSpec

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


# the fixture trains every family (about 3 minutes on 2 idle cores, 10 when CI shares them): only a hang reaches this
def test_maps_of_trained_zoo_models_find_the_lesions_and_fail_the_randomisation_test(trained_zoo,
                                                                                           monkeypatch):
    """Adebayo et al.'s two checks per family on 24 fresh abnormal phantom images ("is there a <finding>?", explaining
    "yes"): the map's mass inside the findings' mask is well above the mask's share of the image, and a copy with
    re-drawn weights gives a different map that no longer finds the lesions."""
    from medvqa.model_cache import CACHE

    monkeypatch.setenv("MEDVQA_CHECKPOINTS", str(trained_zoo))
    CACHE.unload_all()
    cases = maps.phantom_cases(24)
    figures = {family: maps.sanity_check(medvqa.load_model(f"{family}-phantom"), cases)
               for family in local_family_names()}
    for family, f in figures.items():
        assert f.mass_inside > 2 * f.mask_share, (family, f)
        assert f.mass_inside_randomised < 0.6 * f.mass_inside, (family, f)
        assert abs(f.rank_correlation) < 0.5, (family, f)
    CACHE.unload_all()


def test_a_trained_model_flags_a_real_dicom_as_unlike_its_training_images(trained_zoo, monkeypatch):
    """`medvqa train` writes an image profile beside the weights; the answer card's flag reads it."""
    from pydicom.data import get_testdata_file

    from medvqa import images, ood

    monkeypatch.setenv("MEDVQA_CHECKPOINTS", str(trained_zoo))
    assert (trained_zoo / "llava-phantom" / ood.PROFILE_FILE).exists()
    real = images.load_path(get_testdata_file("CT_small.dcm")).image
    warning = ood.unusual_image_warning("llava-phantom", real)
    assert warning and "unlike the images llava-phantom was trained on (phantom)" in warning
    import html

    from medvqa import cases

    answer = medvqa.load_model("llava-phantom").answer(real, "is there a mass?")
    card = cases.answer_of("llava-phantom", answer, image=real)  # what Compare's "Export case" writes
    assert warning in card.notices and any("Not for clinical use" in n for n in card.notices)
    assert html.escape(warning) in cases.render_html(cases.Case("Compare: q", real, "upload", "q", [card]))
    usual = [ood.unusual_image_warning("llava-phantom", image) for image, _, _ in maps.phantom_cases(20, seed=11)]
    assert usual.count(None) >= 19
    assert ood.unusual_image_warning("llava-tiny", real) is None  # no profile, no flag (and no false reassurance)
