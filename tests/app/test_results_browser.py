"""The results browser: views kept in the address (and links with garbage in them), run against run with its slice
finder, and the Samples and Grade permalinks."""
import re

from medvqa import run_diff
from medvqa.store import Store


def plain(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text).replace("\u200b", "")


def frame_with(app, *columns):
    """The first dataframe on the page holding these columns (AppTest finds dataframes by position, not key)."""
    return next(d.value for d in app.dataframe if set(columns) <= set(d.value.columns))


def run_ids(store: Store) -> dict:
    runs = store.runs()
    return {(r.model, r.ablation): int(r.id) for r in runs.itertuples()}


def test_samples_filters_live_in_the_address_and_a_link_restores_them(app, evaluated):
    app.switch_page("views/samples.py").run()
    app.multiselect(key="samples-atype").set_value(["closed"]).run()
    app.selectbox(key="samples-wrong").set_value("vilt-tiny").run()
    assert app.query_params["atype"] == "closed" and app.query_params["wrong"] == "vilt-tiny"
    caption = next(c.value for c in app.caption if " samples · models" in c.value)
    from streamlit.testing.v1 import AppTest

    fresh = AppTest.from_file(app._script_path, default_timeout=app.default_timeout)
    fresh.query_params.update(dict(app.query_params))
    fresh.switch_page("views/samples.py").run()
    assert fresh.multiselect(key="samples-atype").value == ["closed"]
    assert fresh.selectbox(key="samples-wrong").value == "vilt-tiny"
    assert next(c.value for c in fresh.caption if " samples · models" in c.value) == caption


def test_a_link_with_garbage_says_so_and_shows_the_defaults(app, evaluated):
    app.query_params.update({"dataset": "no-such-set", "wrong": "ghost-model", "page": "abc", "disagree": "maybe"})
    app.switch_page("views/samples.py").run()
    assert not app.exception
    warning = plain(" ".join(w.value for w in app.warning))
    for named in ("dataset: no-such-set", "wrong: ghost-model", "page: abc", "disagree: maybe"):
        assert named in warning
    assert app.selectbox(key="samples-dataset").value == "phantom"
    assert app.selectbox(key="samples-wrong").value == "(any)" and app.number_input(key="samples-page").value == 1


def test_run_against_run_shows_the_flips_the_slices_and_the_changed_samples(app, evaluated):
    ids = run_ids(evaluated)
    baseline, candidate = ids[("vilt-tiny", "none")], ids[("vilt-tiny", "swap-images")]
    app.query_params.update({"view": "Run against run", "baseline": str(baseline), "candidate": str(candidate)})
    app.switch_page("views/samples.py").run()
    assert not app.exception and not app.warning
    assert (app.selectbox(key="samples-diff-a").value, app.selectbox(key="samples-diff-b").value) == (
        baseline, candidate)
    diff = run_diff.compare_runs(baseline, candidate, evaluated)
    shown = {m.label: m.value for m in app.metric}
    assert shown["Shared samples"] == str(diff.shared)
    assert shown["Right to wrong"] == str(diff.counts["right to wrong"])
    assert shown["Exact McNemar p"] == f"{diff.p_value:.4f}"
    rows = frame_with(app, "kind", "answer_a")
    kinds = list(rows.kind)
    assert kinds == sorted(kinds, key=run_diff.KIND_ORDER.index)  # flips first
    app.checkbox(key="samples-diff-changed").check().run()
    assert app.query_params["changed"] == "1"
    changed = frame_with(app, "kind", "answer_a")
    assert len(changed) == min(25, diff.changed) and "same, right" not in set(changed.kind)
    app.number_input(key="samples-diff-min-n").set_value(4).run()
    assert app.query_params["min_n"] == "4"
    assert not frame_with(app, "subset", "difference").empty


def test_a_diff_link_naming_a_run_of_another_dataset_is_refused(app, evaluated):
    ids = run_ids(evaluated)
    elsewhere, _ = evaluated.open_run({"model": "vilt-tiny", "spec_hash": "x", "dataset": "vqa-rad", "split": "test",
                                       "ablation": "none", "prompt": "plain", "generation": {}})
    evaluated.finish_run(elsewhere, [])
    app.query_params.update({"view": "Run against run", "baseline": str(elsewhere),
                             "candidate": str(ids[("vilt-tiny", "none")])})
    app.switch_page("views/samples.py").run()
    assert not app.exception
    assert any(f"baseline: {elsewhere}" in plain(w.value) for w in app.warning)  # not a phantom/test run: left out
    assert app.metric  # and the page shows the default pair


def test_a_sample_and_a_grade_item_have_permalinks(app, evaluated):
    app.switch_page("views/samples.py").run()
    link = next(m.value for m in app.markdown if "permalink" in m.value)
    sample = re.search(r"sample=([^)&]+)", link).group(1)
    app.query_params.update({"dataset": "phantom", "split": "test", "sample": sample})
    app.run()
    assert any(f"Sample {sample} of phantom/test" in plain(i.value) for i in app.info)
    assert next(c.value for c in app.caption if " samples · models" in c.value).startswith("1 of ")
    app.query_params.clear()
    app.session_state["rater-name"] = "dr-lee"
    ids = run_ids(evaluated)
    run = ids[("llava-tiny", "none")]
    app.query_params.update({"dataset": "phantom", "split": "test", "item": f"{run}:{sample}"})
    app.switch_page("views/grade.py").run()
    assert not app.exception
    text = plain(" ".join(m.value for m in app.markdown))
    assert "Answer of llava-tiny" in text and f"item={run}%3A{sample}" in text
    app.query_params.update({"item": "999:nothing"})
    app.run()
    assert any("names item 999:nothing, which is not in the store" in plain(w.value) for w in app.warning)


def test_metrics_and_leaderboard_filters_are_links(app, evaluated):
    app.query_params.update({"model": "llava-tiny", "questions": "closed", "by": "modality"})
    app.switch_page("views/metrics.py").run()
    assert not app.exception
    assert app.multiselect(key="metrics-models").value == ["llava-tiny"]
    assert app.selectbox(key="metrics-subset").value == "closed" and app.radio(key="metrics-field").value == "modality"
    table = frame_with(app, "model", "subset", "value", "run_id")
    assert set(table.model) == {"llava-tiny"} and set(table.subset) == {"closed"}
    app.query_params.clear()
    app.query_params.update({"signed_in": "1"})
    app.switch_page("views/leaderboard.py").run()
    assert not app.exception and app.checkbox(key="lb-verified").value


def test_the_metrics_table_for_a_paper(app, evaluated):
    app.switch_page("views/metrics.py").run()
    markdown = app.code[0].value
    assert markdown.startswith("| model | phantom/test (none) | phantom/test (swap-images) |")
    assert "**" in markdown  # the best of each column in bold
    next(g for g in app.get("button_group") if "LaTeX" in str(g.proto)).set_value("LaTeX").run()
    latex = app.code[0].value
    assert latex.startswith("\\begin{tabular}{lcc}\n\\toprule") and "\\textbf{" in latex
