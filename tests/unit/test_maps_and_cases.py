"""Relevance-map arithmetic and overlays, and case reports as HTML (no model needed)."""
import base64
import dataclasses
import io
import re

import numpy as np
import pytest
from PIL import Image

from medvqa import cases, maps
from medvqa.datatypes import Answer


def test_mass_inside_on_a_worked_example():
    relevance = np.array([[1.0, 0.0], [0.5, 0.5]])
    mask = np.array([[True, False], [False, True]])
    assert maps.mass_inside(relevance, mask) == pytest.approx(1.5 / 2.0)
    assert maps.mass_inside(np.zeros((2, 2)), mask) == 0.0


def test_rank_correlation_of_equal_reversed_and_unrelated_maps():
    a = np.arange(100, dtype=float).reshape(10, 10)
    assert maps.rank_correlation(a, a * 3 + 1) == pytest.approx(1.0)
    assert maps.rank_correlation(a, -a) == pytest.approx(-1.0)
    noise = np.random.default_rng(0).random((10, 10))
    assert abs(maps.rank_correlation(a, noise)) < 0.3


def test_overlay_keeps_the_image_where_the_map_is_zero_and_colours_it_where_it_is_one():
    image = Image.new("RGB", (4, 2), (100, 100, 100))
    relevance = np.zeros((2, 4), dtype=np.float32)
    relevance[0, 0] = 1.0
    out = np.asarray(maps.overlay(image, relevance, opacity=1.0))
    assert tuple(out[1, 3]) == (100, 100, 100)
    assert tuple(out[0, 0]) == (253, 231, 37)  # the top of the colour scale
    assert np.asarray(maps.overlay(image, relevance, opacity=0.0)).tolist() == np.asarray(image).tolist()
    with pytest.raises(ValueError, match="does not fit"):
        maps.overlay(image, np.zeros((4, 2)))


def _embedded_images(document: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(data)))
            for data in re.findall(r'src="data:image/png;base64,([^"]+)"', document)]


def test_a_case_report_is_one_escaped_self_contained_page():
    image = Image.new("RGB", (32, 24), (20, 40, 60))
    relevance = np.zeros((24, 32), dtype=np.float32)
    relevance[5:10, 5:10] = 1.0
    answers = [
        dataclasses.replace(cases.answer_of("vilt-x", Answer("yes", 0.91, [], 0.012, "vilt-x"), correct=True,
                                            relevance=relevance), notices=["Demo model, not for clinical use."]),
        cases.answer_of("llava-x", Answer("<script>alert(1)</script>", None, [], 0.5, "llava-x"), correct=False,
                        relevance="llava-x: not available for served models"),
        cases.answer_of("blip-x", "blip-x failed unexpectedly (RuntimeError)"),
    ]
    case = cases.Case("Compare: is there a mass?", image, "uploaded study: CT series 3, axial slice 2 of 5",
                      "is there a mass?", answers, ground_truth="yes", source="Compare page")
    document = cases.render_html(case)
    assert document.startswith("<!DOCTYPE html>") and "<script>" not in document
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document
    assert "confidence 0.91 · 12 ms" in document and "confidence n/a · 500 ms" in document
    assert document.count('class="right"') == 1 and document.count('class="wrong"') == 1
    assert "not available for served models" in document and "blip-x failed unexpectedly" in document
    assert "Ground truth: <b>yes</b>" in document and "Demo model, not for clinical use." in document
    embedded = _embedded_images(document)
    assert [im.size for im in embedded] == [(32, 24), (32, 24)]  # the image and vilt-x's map over it
    assert np.asarray(embedded[0]).tolist() == np.asarray(image).tolist()
    assert "http" not in document.replace("http-equiv", "")  # nothing fetched from anywhere


def test_a_case_keeps_the_calibrated_confidence_and_the_deferral_the_card_showed():
    deferring = Answer("yes", 0.91, [], 0.012, "vilt-x", calibrated=0.55, defers=True)
    answer = cases.answer_of("vilt-x", deferring)
    assert any(n.startswith("Defers to a radiologist: calibrated confidence 55%") for n in answer.notices)
    case = cases.Case("Compare: is there a mass?", Image.new("RGB", (8, 8)), "upload", "is there a mass?", [answer])
    assert "confidence 0.55 calibrated (raw 0.91)" in cases.render_html(case)


def test_a_case_is_written_under_a_name_made_from_its_title(tmp_path):
    case = cases.Case("Grade: phantom/test s-1 / what is it?", Image.new("RGB", (8, 8)), "phantom sample", "what?",
                      [])
    path = cases.write(case, tmp_path / "cases")
    assert path.parent == tmp_path / "cases" and re.fullmatch(r"grade-phantom-test-s-1-what-is-it-\d{8}-\d{6}\.html",
                                                              path.name)
    assert "what?" in path.read_text()
