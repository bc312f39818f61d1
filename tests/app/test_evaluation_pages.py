"""Metrics, Samples, Models and Home: what they show equals what the store and the registry hold."""
import base64

import numpy as np
import plotly.io
import pytest

import medvqa
from medvqa.model_cache import CACHE
from medvqa.store.queries import sample_page
from medvqa.ui import escaped


def test_metrics_table_equals_the_store_and_filters_apply(app, evaluated):
    app.switch_page("views/metrics.py").run()
    assert not app.exception
    shown = app.dataframe[1].value  # [0] is the Confidence tab's table
    stored = evaluated.metrics(latest=True, metric="accuracy")  # the chosen metric of each newest run
    stored = stored[stored.subset == "all"]
    assert len(shown) == len(stored) and set(shown.metric) == {"accuracy"}
    merged = shown.merge(stored, on=["run_id", "metric"], suffixes=("", "_db"))
    assert len(merged) == len(stored) and (merged.value == merged.value_db).all()
    assert (merged.ci_low == merged.ci_low_db).all()
    app.multiselect(key="metrics-models").set_value(["llava-tiny"]).run()
    assert set(app.dataframe[1].value.model) == {"llava-tiny"}
    app.selectbox(key="metrics-subset").set_value("closed").run()
    assert set(app.dataframe[1].value.subset) == {"closed"}
    charts = [c for c in app.get("plotly_chart")]
    assert len(charts) == 6  # overview, breakdown, ablations, reliability, risk-coverage, loss curves
    assert "swap-images" in charts[2].proto.spec and "vilt-demo" in charts[5].proto.spec
    assert app.get("download_button")


def plotted(values) -> list:
    """A trace's values as a list (Plotly sends numeric arrays base64-encoded)."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)


def test_the_confidence_tab_shows_the_stored_statistics_and_the_diagrams_of_the_chosen_runs(app, evaluated):
    from medvqa import confidence
    from medvqa.store import queries

    app.switch_page("views/metrics.py").run()
    assert not app.exception
    table = app.dataframe[0].value.set_index("model")
    assert set(table.index) == {"vilt-tiny", "llava-tiny"}  # plain runs only
    stored = evaluated.metrics(latest=True, metric="ece_15_equal_width")
    stored = stored[(stored.subset == "all") & (stored.ablation == "none")].set_index("model")
    for model in table.index:
        row = stored.loc[model]
        assert table.loc[model, "ECE (15 equal-width bins)"] == f"{row.value:.3f} ({row.ci_low:.3f}–{row.ci_high:.3f})"
        assert table.loc[model, "scored answers"] == 16  # every local family scores its answers
    charts = [plotly.io.from_json(c.proto.spec).data for c in app.get("plotly_chart")]
    reliability, risk = charts[3], charts[4]
    assert {t.name for t in risk} == {"llava-tiny · phantom/test", "vilt-tiny · phantom/test"}
    run_id = int(stored.loc["vilt-tiny", "run_id"])
    bins = queries.reliability_bins(evaluated, [run_id])
    counts = next(t for t in reliability if t.type == "bar" and t.name == "vilt-tiny · phantom/test")
    assert bins.n.sum() == 16 and plotted(counts.y) == bins.n.tolist()  # the bars count each bin's answers
    app.multiselect(key="metrics-models").set_value(["vilt-tiny"]).run()
    assert app.dataframe[0].value.model.tolist() == ["vilt-tiny"]
    assert {t.name for t in plotly.io.from_json(app.get("plotly_chart")[3].proto.spec).data} == {
        "calibrated", "vilt-tiny · phantom/test"}
    assert len(confidence.STATISTICS) + 4 == app.dataframe[0].value.shape[1]  # model, dataset, split, n


def test_the_ablations_tab_says_whether_each_model_looks_at_the_image(app, evaluated):
    from medvqa import leaderboard
    from medvqa.evaluation import evaluate

    app.switch_page("views/metrics.py").run()
    assert any("blank-image" in c.value for c in app.caption)  # says how to get the table
    evaluate("llava-tiny", "phantom", limit=16, ablation="blank-image", batch_size=16, store=evaluated,
             progress=False)
    app.run()
    assert not app.exception
    shown = next(d for d in app.dataframe if "kept" in d.value.columns).value
    expected = leaderboard.grounding(evaluated)
    assert shown.model.tolist() == ["llava-tiny"] and shown.n.tolist() == [16]
    assert shown.blank.tolist() == expected.blank.tolist() and shown.swapped.tolist() == expected.swapped.tolist()
    assert shown.question_only.isna().all()  # not run yet
    evaluate("llava-tiny", "phantom", limit=16, ablation="question-only", batch_size=16, store=evaluated,
             progress=False)
    pairs = evaluate("vilt-tiny", "phantom", ablation="consistency", store=evaluated, progress=False)
    app.run()
    assert not app.exception
    shown = next(d for d in app.dataframe if "kept" in d.value.columns).value
    assert shown.question_only.tolist() == leaderboard.grounding(evaluated).question_only.tolist()
    assert shown.question_only.notna().all()
    both_right = next(d.value for d in app.dataframe if list(d.value.columns) == [
        "model", "dataset", "split", "value", "ci_low", "ci_high", "n"]).set_index("model")
    assert both_right.loc["vilt-tiny", "value"] == pytest.approx(pairs.summary["all"]["pair_accuracy"])


def test_the_table_tab_shows_the_evaluation_card_of_a_chosen_run(app, evaluated):
    app.switch_page("views/metrics.py").run()
    runs = app.selectbox(key="metrics-card-run").options
    assert len(runs) == 4 and all(r.startswith("run ") for r in runs)  # two models, plain and swapped images
    last = int(evaluated.runs().id.max())
    app.selectbox(key="metrics-card-run").set_value(last).run()
    assert not app.exception
    card = app.dataframe[-1].value.set_index("setting").value
    run_id = int(app.selectbox(key="metrics-card-run").value)
    assert run_id == last
    _, stored = evaluated.run_card(run_id)
    assert card["Questions"] == "16" and card["Data content hash"] == stored["data_fingerprint"]
    assert card["Model"] == stored["model"] and card["Prompt hash"] == stored["prompt_hash"]


def test_samples_show_every_models_answer_and_filters_change_them(app, evaluated):
    page = sample_page(evaluated, "phantom", "test", page_size=100)
    table, models = page.rows, page.models
    assert sorted(models) == ["llava-tiny", "vilt-tiny"] and len(table) == 16 == page.matching
    app.switch_page("views/samples.py").run()
    assert not app.exception
    assert app.caption[0].value.startswith("16 of 16 samples")
    first = table.iloc[0]
    text = " ".join(m.value for m in app.markdown)
    assert escaped(first.question) in text
    answer, _ = first.answers["vilt-tiny"]
    assert f"{escaped('vilt-tiny')}: {escaped(answer) if answer else '(empty)'}" in text
    wrong = sum(answers["vilt-tiny"][1] == 0 for answers in table.answers)
    app.selectbox(key="samples-wrong").set_value("vilt-tiny").run()
    assert app.caption[0].value.startswith(f"{wrong} of 16 samples")
    app.selectbox(key="samples-wrong").set_value("(any)").run()
    app.multiselect(key="samples-atype").set_value(["closed"]).run()
    closed = int((table.answer_type == "closed").sum())
    assert app.caption[0].value.startswith(f"{closed} of 16 samples")


def test_open_a_sample_in_compare(app, evaluated):
    table = sample_page(evaluated, "phantom", "test").rows
    app.switch_page("views/samples.py").run()
    app.button(key=f"samples-open-{table.sample_id.iloc[0]}").click().run()
    app.switch_page("views/compare.py").run()  # AppTest does not follow st.switch_page; the state carries over
    assert not app.exception
    assert app.text_input(key="compare-question").value == table.question.iloc[0]
    assert any(table.sample_id.iloc[0] in i.value for i in app.info)
    assert sorted(app.multiselect(key="compare-models").value) == ["llava-tiny", "vilt-tiny"]  # the sample's models


def test_models_page_loads_and_unloads(app):
    app.switch_page("views/models.py").run()
    assert not app.exception and CACHE.loaded_names() == []
    assert app.button(key="models-load-vilt-tiny-lora").proto.type == "primary"
    app.button(key="models-load-vilt-tiny").click().run()
    assert medvqa.loaded_models() == ["vilt-tiny"]
    assert any(m.label == "Resident MiB" for m in app.metric)
    assert app.button(key="models-load-vilt-tiny-lora").proto.type == "secondary"  # its base is in memory
    app.button(key="models-unload-vilt-tiny").click().run()
    assert medvqa.loaded_models() == []


def test_home_shows_datasets_leaderboard_and_device(app, evaluated):
    app.run()
    assert not app.exception
    datasets = app.dataframe[1].value.set_index("dataset")
    assert datasets.loc["phantom", "prepared"] and "test" in datasets.loc["phantom", "splits"]
    assert not datasets.loc["vqa-rad", "prepared"]
    board = app.dataframe[2].value
    stored = evaluated.metrics()
    for row in board.itertuples():
        expected = stored[(stored.model == row.model) & (stored.ablation == "none") & (stored.subset == "all")
                          & (stored.metric == "accuracy")].value.iloc[0]
        assert row.accuracy == expected
    assert any("**Device:** CPU" in m.value for m in app.markdown)


def test_a_dead_results_server_is_named_and_the_answer_pages_keep_working(app, monkeypatch):
    from tests.conftest import free_port

    port = free_port()  # nothing listens there
    monkeypatch.setenv("MEDVQA_DB", f"postgresql://medvqa@127.0.0.1:{port}/team")
    app.run()
    assert not app.exception
    assert any(f"results database unreachable: 127.0.0.1:{port}/team" in w.value for w in app.warning)
    for page in ("views/metrics.py", "views/samples.py", "views/grade.py", "views/leaderboard.py", "views/arena.py"):
        app.switch_page(page).run()
        assert not app.exception, page
        assert any(escaped(f"results database unreachable: 127.0.0.1:{port}/team") in e.value for e in app.error), page
    app.switch_page("views/ask.py").run()
    assert not app.exception and not app.error


def test_samples_and_grade_show_runs_on_a_dataset_this_machine_lacks(app, private_store):
    """A shared store lists runs made elsewhere: the pages show the stored text and say the images are missing."""
    from medvqa.store import Store
    from tests.integration.test_store import prediction

    store = Store(private_store)  # this app's data cache holds only the phantom set
    run_id = store.open_run({"model": "elsewhere", "spec_hash": "h", "dataset": "vqa-rad", "split": "test",
                             "ablation": "none", "prompt": "plain", "generation": {}})[0]
    store.add_predictions(run_id, [prediction("rad-1", "yes", "no")])
    store.finish_run(run_id, [])
    app.switch_page("views/samples.py").run()
    assert not app.exception
    assert any("vqa-rad" in w.value and "not prepared" in w.value for w in app.warning)
    assert any(escaped("question rad-1") in m.value for m in app.markdown)
    app.switch_page("views/grade.py").run()
    app.session_state["rater-name"] = "dr-a"
    app.run()
    assert not app.exception
    assert any(escaped("question rad-1") in m.value for m in app.markdown)


HOSTILE = "![x](http://127.0.0.1:9/leak) <img src=x onerror=alert(1)> **bold** :material/home:"


def test_imported_content_is_shown_as_text_on_samples_and_grade(app, private_store):
    """A question, ground truth, answer and model name from an imported file are text on the pages: no markdown
    image (which the browser would fetch), tag, emphasis or icon comes out of them."""
    from medvqa.datatypes import Sample
    from medvqa.evaluation import prediction_row
    from medvqa.store import Store
    store = Store(private_store)
    model = "[evil](http://127.0.0.1:9/m)"
    run_id = store.open_run({"model": model, "spec_hash": "h", "dataset": "vqa-rad", "split": "test",
                             "ablation": "none", "prompt": "plain", "generation": {}})[0]
    sample = Sample(id="rad-1", image=None, question=HOSTILE, answer=HOSTILE, answer_type="open", image_id="i1")
    store.add_predictions(run_id, [prediction_row(sample, HOSTILE, cache_key="k1")])
    store.finish_run(run_id, [])
    for page in ("views/samples.py", "views/grade.py"):
        app.switch_page(page).run()
        app.session_state["rater-name"] = "dr-a"
        app.run()
        assert not app.exception
        sent = " ".join(m.value for m in app.markdown)
        assert escaped(HOSTILE) in sent, page
        for raw in ("![x](http", "<img", "**bold**", ":material/home:", "[evil](http"):
            assert raw not in sent.replace(escaped(HOSTILE), "").replace(escaped(model), ""), (page, raw)


def test_a_hung_engine_never_holds_the_models_page(app, scratch_zoo):
    """Three served specs: an engine that accepts the connection and never answers, a port nobody listens on, and a
    spec naming a variable no key may come from. The page renders the first two as down, with why, within its
    deadline; the third is skipped when its spec is read, naming the field."""
    import http.server
    import threading

    from medvqa import serving
    from medvqa.datatypes import ModelSpec
    from medvqa.ui.registry_table import HEALTH_DEADLINE_S
    from tests.conftest import free_port

    release = threading.Event()

    class Hung(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            release.wait(60)  # holds the health check's request open past the page's deadline

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hung)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        specs = {"hung@served": f"http://127.0.0.1:{httpd.server_address[1]}",
                 "dead@served": f"http://127.0.0.1:{free_port()}", "leaky@served": "http://127.0.0.1:9"}
        serving.register([ModelSpec(name=name, family="served", base=base,
                                    extra={"served_model": "m", "retries": 0,
                                           **({"api_key_env": "MEDVQA_DB"} if name == "leaky@served" else {})})
                          for name, base in specs.items()], scratch_zoo)
        app.switch_page("views/models.py").run()
        assert not app.exception
        engines = [m.value for m in app.metric if m.label == "Engine"]
        assert engines == ["down", "down"]
        said = " ".join(c.value for c in app.caption)
        assert f"no answer within {HEALTH_DEADLINE_S:.0f} s" in said  # the hung engine
        assert "is unreachable" in said
        skipped = " ".join(w.value for w in app.warning)
        assert "field 'api\\_key\\_env' is 'MEDVQA\\_DB'" in skipped
    finally:
        release.set()
        httpd.shutdown()

