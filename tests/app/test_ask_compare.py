"""Long (every way of asking, and the layouts of many answers): Ask and Compare pages: the answers shown are the
models' answers; nothing reloads between questions."""
import re

import medvqa
import medvqa.registry
from medvqa import data
from medvqa.model_cache import CACHE
from medvqa.ui.answers import ANSWER_LABEL


def first_sample():
    return data.load("phantom", split="test", limit=200, seed=0)[0]


def answers_shown(app) -> list[str]:
    """The answers on the page's cards, in order: each is body text after its label, its markdown escaped."""
    label = f"{ANSWER_LABEL} "
    return [re.sub(r"\\(.)", r"\1", m.value[len(label):]).replace("\u200b", "") for m in app.markdown
            if m.value.startswith(label)]


def test_ask_shows_the_models_answer_for_a_phantom_sample(app):
    sample = first_sample()
    app.switch_page("views/ask.py").run()
    assert app.text_input(key="ask-question").value == sample.question
    app.selectbox(key="ask-model").set_value("llava-tiny").run()
    app.button(key="ask-go").click().run()
    assert not app.exception
    expected = medvqa.load_model("llava-tiny").answer(sample.image, sample.question).text
    assert answers_shown(app) == [expected or "(empty)"]
    assert any(f"Ground truth: **{sample.answer}**" in c.value for c in app.caption)


def test_ask_with_vilt_shows_candidates_and_a_bad_upload_shows_an_error(app):
    app.switch_page("views/ask.py").run()
    app.selectbox(key="ask-model").set_value("vilt-tiny").run()
    app.button(key="ask-go").click().run()
    assert list(app.dataframe[0].value.columns) == ["candidate", "probability"]
    app.radio(key="ask-src").set_value("Upload").run()
    app.get("file_uploader")[0].set_value(("scan.png", b"not an image", "image/png")).run()
    assert any("not an image format" in e.value for e in app.error)


def test_a_16_bit_upload_gets_window_controls_and_is_not_saturated(app):
    import io

    import numpy as np
    from PIL import Image

    ramp = np.tile(np.linspace(0, 65535, 256), (64, 1)).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")
    app.switch_page("views/ask.py").run()
    app.radio(key="ask-src").set_value("Upload").run()
    app.get("file_uploader")[0].set_value(("ct-slice.png", buf.getvalue(), "image/png")).run()
    assert not app.error and not app.exception
    window = app.selectbox(key="ask-win")
    assert window.label == "Window (16-bit or float image)" and window.options == ["automatic", "custom"]
    app.selectbox(key="ask-win").set_value("custom").run()
    app.number_input(key="ask-c").set_value(16384.0).run()
    app.number_input(key="ask-w").set_value(32768.0).run()
    assert not app.error and not app.exception
    assert "ct-slice.png (format PNG" in app.image[0].proto.imgs[0].caption  # decoded and shown


def test_compare_shows_every_family_and_reloads_nothing(app):
    sample = first_sample()
    app.switch_page("views/compare.py").run()
    names = app.multiselect(key="compare-models").value
    assert sorted(medvqa.registry.get_spec(n).family for n in names) == sorted(medvqa.models.local_family_names())
    app.button(key="compare-go").click().run()
    assert not app.exception
    expected = [medvqa.load_model(name).answer(sample.image, sample.question).text or "(empty)" for name in names]
    assert answers_shown(app) == expected
    loads = CACHE.load_count
    app.text_input(key="compare-question").set_value("What organ is shown?").run()
    app.button(key="compare-go").click().run()
    # a second question loads no model (its speed is measured by benchmarks/compare_warm.py, not asserted here)
    assert len(answers_shown(app)) == len(names) and CACHE.load_count == loads
    app.run()  # a plain rerun (any widget change) reloads nothing either
    assert CACHE.load_count == loads


def test_gallery_dicom_with_a_window_preset(app):
    app.switch_page("views/compare.py").run()
    app.radio(key="compare-src").set_value("Gallery (real DICOM)").run()
    app.selectbox(key="compare-win").set_value("lung").run()
    assert not app.exception and not app.error
    assert "format DICOM, modality CT" in app.image[0].proto.imgs[0].caption


def test_a_compare_over_the_memory_budget_reloads_one_model_per_question_not_all(zoo, monkeypatch):
    """Budget one model short: asking in page order reloaded every base on every question (25 loads in 5 compares
    of 5 models); resident models first, then the rest, reloads one per question."""
    from medvqa import registry, weights
    from medvqa.ui.answers import ask, one_per_family, over_budget
    from tests.conftest import noise_image

    names = one_per_family()
    sizes = [weights.spec_bytes(registry.get_spec(n)) for n in names]
    budget = sum(sizes) - min(sizes) / 2  # any all-but-one fit, not all
    monkeypatch.setenv("MEDVQA_MEMORY_BUDGET_GB", str(budget / 1024**3))
    assert "memory budget" in over_budget(names)
    ask(names, noise_image(0), "What organ is shown?")  # warm: every model loaded once
    loads = CACHE.load_count
    for i in range(5):
        answers = ask(names, noise_image(i + 1), "What organ is shown?")
        assert list(answers) == names and all(not isinstance(a, str) for a in answers.values())
    assert CACHE.load_count - loads <= 5  # at most one reload per question (it was one per model)
    monkeypatch.setenv("MEDVQA_MEMORY_BUDGET_GB", str(sum(sizes) * 2 / 1024**3))
    assert over_budget(names) is None


def test_a_dead_served_model_shows_its_error_card_and_the_others_answer(app, scratch_zoo):
    """Compare mixes local and served models; an engine that is down costs its own card only. The Models page says
    it is down."""
    from medvqa import serving
    from medvqa.datatypes import ModelSpec
    from tests.conftest import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    serving.register([ModelSpec(name="remote@served", family="served", base=dead,
                                extra={"served_model": "llava", "retries": 0})], scratch_zoo)
    app.switch_page("views/compare.py").run()
    app.multiselect(key="compare-models").set_value(["vilt-tiny", "remote@served", "llava-tiny"]).run()
    app.button(key="compare-go").click().run()
    assert not app.exception
    from medvqa.ui import escaped

    # the engine's message, shown as text (an engine's error body could carry markdown)
    assert [e.value for e in app.error] == [escaped(f"{dead} is unreachable (ConnectError): is the engine running?")]
    assert len(answers_shown(app)) == 2  # the two local models answered
    app.switch_page("views/models.py").run()
    assert not app.exception
    text = " ".join(m.value for m in app.markdown)
    assert f"endpoint {escaped(dead)}" in text and any(m.value == "down" for m in app.metric)


def test_a_long_question_says_so_and_an_empty_one_loads_nothing(app):
    app.switch_page("views/compare.py").run()
    app.text_input(key="compare-question").set_value("Is there a mass? " * 100).run()
    assert any("characters long; the limit is 1,000" in e.value for e in app.error)
    assert app.button(key="compare-go").disabled
    app.text_input(key="compare-question").set_value("   ").run()
    assert app.button(key="compare-go").disabled and not app.error  # nothing to click: no model loads
    assert not answers_shown(app)


def test_answer_cards_mark_right_and_wrong_in_text_and_say_what_a_demo_model_is(app):
    sample = first_sample()
    app.switch_page("views/ask.py").run()
    app.selectbox(key="ask-model").set_value("llava-tiny").run()
    app.button(key="ask-go").click().run()
    text = " ".join(m.value for m in app.markdown)
    assert ":green-badge[:material/check: right]" in text or ":red-badge[:material/close: wrong]" in text
    assert "✅" not in text and "❌" not in text
    assert any("Untrained demo model" in c.value and "Not for clinical use" in c.value for c in app.caption)
    assert sample.question
    app.selectbox(key="ask-model").set_value("vit-gpt2-tiny-lora").run()  # a random adapter is untrained too
    app.button(key="ask-go").click().run()
    assert any("Untrained demo model" in c.value and "Not for clinical use" in c.value for c in app.caption)


def test_compare_says_a_demo_notice_once_naming_its_models(app):
    app.switch_page("views/compare.py").run()
    app.multiselect(key="compare-models").set_value(["vilt-tiny", "llava-tiny", "blip-tiny"]).run()
    app.button(key="compare-go").click().run()
    notices = [c.value for c in app.caption if "Untrained demo model" in c.value]
    assert len(notices) == 1 and all(name.replace("-", "\\-") in notices[0]
                                     for name in ("vilt-tiny", "llava-tiny", "blip-tiny"))


def test_random_demo_adapters_are_untrained_and_stay_out_of_the_arena_draw(zoo):
    import dataclasses

    from medvqa import registry
    from medvqa.ui.judgment import arena_candidates

    specs = registry.list_models()
    adapters = [s for s in specs if s.name.endswith("-tiny-lora")]
    assert adapters and all(s.untrained and s.demo_notice.startswith("Untrained demo model") for s in adapters)
    trained = [dataclasses.replace(s, name=f"{s.family}-phantom", description="trained", extra={})
               for s in specs if s.name in ("llava-tiny", "blip-tiny")]
    drawn = arena_candidates(specs + trained)
    assert sorted(drawn) == ["blip-phantom", "llava-phantom"]  # the random adapters stay out once others exist


def test_a_zipped_series_upload_gets_a_slice_slider_and_is_answered_on_the_chosen_slice(app):
    from tests.unit.test_studies import series_files, zipped

    app.switch_page("views/ask.py").run()
    app.radio(key="ask-src").set_value("Upload").run()
    app.get("file_uploader")[0].set_value(("ct5n.zip", zipped(series_files("98892001/CT5N")), "application/zip")).run()
    assert not app.exception and not app.error
    assert app.slider(key="ask-slice").value == 2  # the middle of 5
    app.slider(key="ask-slice").set_value(4).run()
    assert "slice 4 of 5" in app.image[0].proto.imgs[0].caption
    assert "lung" in app.selectbox(key="ask-study-win").options  # CT: the Hounsfield presets
    app.selectbox(key="ask-model").set_value("vilt-tiny").run()
    app.text_input(key="ask-question").set_value("Is there a mass?").run()
    app.button(key="ask-go").click().run()
    assert not app.exception and len(answers_shown(app)) == 1


def test_a_multi_frame_dicom_upload_gets_a_frame_slider_on_ask_and_compare(app):
    from pydicom.data import get_testdata_file

    raw = open(get_testdata_file("emri_small.dcm"), "rb").read()  # an MR file of 10 frames
    for page, key in (("views/ask.py", "ask"), ("views/compare.py", "compare")):
        app.switch_page(page).run()
        app.radio(key=f"{key}-src").set_value("Upload").run()
        app.get("file_uploader")[0].set_value(("emri_small.dcm", raw, "application/dicom")).run()
        assert not app.exception and not app.error
        assert app.slider(key=f"{key}-slice").value == 5  # the middle of 10
        app.slider(key=f"{key}-slice").set_value(7).run()
        assert "slice 7 of 10" in app.image[0].proto.imgs[0].caption


def test_compare_shows_where_each_model_looked_on_request_and_offers_the_case(app):
    app.switch_page("views/compare.py").run()
    app.multiselect(key="compare-models").set_value(["vilt-tiny", "llava-tiny"]).run()
    app.button(key="compare-go").click().run()
    captions = lambda: [img.caption for element in app.image for img in element.proto.imgs]  # noqa: E731
    assert not any(c.startswith("where") for c in captions())  # a backward pass only when asked
    assert len(app.get("download_button")) == 1
    app.toggle(key="compare-maps").set_value(True).run()
    assert not app.exception
    assert {"where vilt-tiny looked", "where llava-tiny looked"} <= set(captions())
    assert len(answers_shown(app)) == 2  # the answers stay across reruns
    app.slider(key="compare-opacity").set_value(0.3).run()
    assert not app.exception and len(answers_shown(app)) == 2
    app.text_input(key="compare-question").set_value("What organ is shown?").run()
    assert not answers_shown(app)  # another question: the old answers are not shown under it


def test_several_dicom_files_of_a_series_upload_as_one_study(app):
    from tests.unit.test_studies import series_files

    app.switch_page("views/compare.py").run()
    app.radio(key="compare-src").set_value("Upload").run()
    files = [(name, raw, "application/dicom") for name, raw in series_files("98892001/CT5N")]
    app.get("file_uploader")[0].set_value(files).run()
    assert not app.exception and not app.error
    app.slider(key="compare-slice").set_value(1).run()
    assert "5 files: CT series" in app.image[0].proto.imgs[0].caption
    assert "slice 1 of 5" in app.image[0].proto.imgs[0].caption


def test_an_image_unlike_the_models_training_images_is_flagged_on_its_card(app, scratch_zoo):
    from medvqa import ood
    from tests.unit.test_ood import phantoms

    ood.fit(phantoms(60, seed=1)).save(scratch_zoo / "vilt-tiny" / ood.PROFILE_FILE)
    app.switch_page("views/compare.py").run()
    app.multiselect(key="compare-models").set_value(["vilt-tiny", "llava-tiny"]).run()
    app.button(key="compare-go").click().run()
    assert "unlike its training images" not in " ".join(m.value for m in app.markdown)  # a phantom sample: usual
    app.radio(key="compare-src").set_value("Gallery (real DICOM)").run()
    app.button(key="compare-go").click().run()
    assert not app.exception
    text = " ".join(m.value for m in app.markdown)
    assert text.count(":orange-badge[:material/warning: unlike its training images]") == 1  # llava-tiny: no profile
    from medvqa.ui import escaped

    assert any(escaped("unlike the images vilt-tiny was trained on") in c.value for c in app.caption)  # as text


def test_an_answer_under_the_models_threshold_defers_to_a_radiologist(app):
    from medvqa import recalibration

    spec = medvqa.registry.get_spec("llava-tiny")
    # a calibration that keeps the score as it is (slope 1, intercept 0) and defers under 0.999: every answer defers
    recalibration.save(spec, recalibration.Recalibration(1.0, 0.0, 0.999, 0.1, {
        "model": "llava-tiny", "dataset": "phantom", "split": "validation"}))
    try:
        app.switch_page("views/ask.py").run()
        app.selectbox(key="ask-model").set_value("llava-tiny").run()
        app.button(key="ask-go").click().run()
        assert not app.exception
        warning = " ".join(w.value for w in app.warning)
        assert "Defers to a radiologist" in warning and "chosen on phantom/validation" in warning
        assert app.expander[0].label == "Show the answer anyway"
        sample = first_sample()
        expected = medvqa.load_model("llava-tiny").answer(sample.image, sample.question)
        assert expected.defers and answers_shown(app) == [expected.text or "(empty)"]  # inside the expander
        assert any(f"confidence {expected.calibrated:.2f} calibrated" in c.value.replace("\\", "") for c in app.caption)
    finally:
        recalibration.path_for(spec).unlink()


def test_compare_as_a_table_and_two_maps_side_by_side_or_on_a_slider(app):
    sample = first_sample()
    app.switch_page("views/compare.py").run()
    names = app.multiselect(key="compare-models").value
    assert len(names) >= 7  # one per family: seven models, still readable
    app.button(key="compare-go").click().run()
    app.get("button_group")[0].set_value("Table").run()
    table = app.table[0].value
    assert list(table.index) == names and not answers_shown(app)  # one row per model instead of the cards
    expected = [medvqa.load_model(n).answer(sample.image, sample.question).text or "(empty)" for n in names]
    assert list(table.answer) == expected  # every answer whole
    app.toggle(key="compare-maps").set_value(True).run()
    assert not app.exception
    first, second = app.selectbox(key="compare-map-a").value, app.selectbox(key="compare-map-b").value
    assert first != second
    assert [i.proto.imgs[0].caption for i in app.image][-2:] == [first, second]
    next(g for g in app.get("button_group") if "Slider" in str(g.proto)).set_value("Slider").run()
    app.slider(key="compare-map-mix").set_value(0.25).run()
    assert app.image[-1].proto.imgs[0].caption == f"75% {first}, 25% {second}"
