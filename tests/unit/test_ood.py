"""The out-of-distribution flag's image profile: phantom images stay inside it, real DICOMs and noise fall outside."""
import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from medvqa import images, ood
from medvqa.data.phantom_images import STYLES, draw, sample_truth


def phantoms(n: int, seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    styles = list(STYLES)
    return [draw(sample_truth(rng, styles[i % len(styles)]), rng) for i in range(n)]


@pytest.fixture(scope="module")
def profile():
    return ood.fit(phantoms(240, seed=1))


def test_new_phantom_images_are_usual_and_real_dicoms_and_noise_are_not(profile):
    fresh = [profile.distance(image) for image in phantoms(100, seed=2)]
    assert np.mean(np.asarray(fresh) > profile.threshold) <= 0.03
    for name in ("CT_small.dcm", "MR_small.dcm"):
        real = images.load_path(get_testdata_file(name)).image
        assert profile.distance(real) > profile.threshold, name
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8))
    assert profile.distance(noise) > profile.threshold


def test_a_profile_round_trips_through_json_and_a_damaged_one_costs_only_the_flag(profile, tmp_path, caplog):
    path = profile.save(tmp_path / ood.PROFILE_FILE)
    again = ood.ImageProfile.load(path)
    image = phantoms(1, seed=3)[0]
    assert again.distance(image) == pytest.approx(profile.distance(image)) and again.images == 240
    assert ood.profile_of(tmp_path) is not None and ood.profile_of(tmp_path / "elsewhere") is None
    path.write_text("{not json")
    assert ood.profile_of(tmp_path) is None and "ignoring" in caplog.text
    with pytest.raises(ValueError, match="20 images or more"):
        ood.fit(phantoms(5, seed=4))


def test_distinct_images_drops_repeated_pictures():
    a, b = phantoms(2, seed=5)
    assert len(ood.distinct_images([a, a.copy(), b, a])) == 2
