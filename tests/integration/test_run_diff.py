"""Run against run on a worked example, on SQLite and PostgreSQL: the flips, the exact McNemar test against
statsmodels, the breakdowns, the changed-first paging, the refusal of runs on other data, and `medvqa report --diff`."""
import pandas as pd
import pytest
from statsmodels.stats.contingency_tables import mcnemar as statsmodels_mcnemar

from medvqa import run_diff
from medvqa.datatypes import Prediction
from medvqa.metrics import normalize
from medvqa.store import Store
from medvqa.store.diffs import diff_page

# sample -> (ground truth, baseline answer, candidate answer, modality); correct = equal to the ground truth
WORKED = {
    "s01": ("yes", "yes", "no", "CT"),   # right to wrong
    "s02": ("yes", "yes", "no", "CT"),   # right to wrong
    "s03": ("no", "yes", "no", "MR"),    # wrong to right
    "s04": ("no", "yes", "no", "MR"),    # wrong to right
    "s05": ("no", "yes", "no", "MR"),    # wrong to right
    "s06": ("no", "yes", "no", "MR"),    # wrong to right
    "s07": ("no", "yes", "no", "MR"),    # wrong to right
    "s08": ("lung", "liver", "brain", "CT"),  # changed, both wrong
    "s09": ("yes", "yes", "yes", "CT"),  # same, right
    "s10": ("yes", "no", "no", "MR"),    # same, wrong
    "s11": ("yes", "yes", "Yes.", "CT"),  # same after normalising: same, right
}


def add_run(store, model: str, answers: dict, dataset: str = "phantom", only=None) -> int:
    run_id, _ = store.open_run({"model": model, "spec_hash": model, "dataset": dataset, "split": "test",
                                "ablation": "none", "prompt": "plain", "generation": {}})
    rows = []
    for sample_id, (truth, _, _, modality) in WORKED.items():
        if only is not None and sample_id not in only:
            continue
        answer = answers[sample_id]
        rows.append(Prediction(sample_id, f"{model}-{sample_id}", f"question {sample_id}", truth, answer, 0.5, 0.01,
                               "closed", "PRES", modality, "chest", sample_id, "{}",
                               float(normalize(answer) == normalize(truth)), normalize(answer)))
    store.add_predictions(run_id, rows)
    store.finish_run(run_id, [])
    return run_id


@pytest.fixture
def two_runs(store_url):
    store = Store()
    a = add_run(store, "baseline", {k: v[1] for k, v in WORKED.items()})
    b = add_run(store, "candidate", {k: v[2] for k, v in WORKED.items()})
    return store, a, b


def test_the_flips_and_the_test_on_a_worked_example(two_runs):
    store, a, b = two_runs
    diff = run_diff.compare_runs(a, b, store)
    assert diff.counts == {"right to wrong": 2, "wrong to right": 5, "changed, both right": 0,
                           "changed, both wrong": 1, "same, right": 2, "same, wrong": 1}
    assert diff.shared == 11 and diff.changed == 8
    assert diff.accuracy_baseline == pytest.approx(4 / 11) and diff.accuracy_candidate == pytest.approx(7 / 11)
    reference = statsmodels_mcnemar([[2, 2], [5, 2]], exact=True).pvalue  # only the discordant cells count
    assert diff.p_value == pytest.approx(reference) == pytest.approx(0.453125)
    by_modality = diff.by["modality"].set_index("modality")
    assert by_modality.loc["CT", "right to wrong"] == 2 and by_modality.loc["CT", "wrong to right"] == 0
    assert by_modality.loc["MR", "wrong to right"] == 5 and by_modality.loc["MR", "n"] == 6
    assert by_modality.loc["MR", "p_value"] == pytest.approx(statsmodels_mcnemar([[0, 0], [5, 1]], exact=True).pvalue)
    text = "\n".join(diff.lines())
    assert "right to wrong 2, wrong to right 5: exact McNemar p = 0.4531" in text
    assert "accuracy 0.364 -> 0.636 (+0.273)" in text


def test_pages_put_flips_first_and_filter_in_sql(two_runs):
    store, a, b = two_runs
    rows, matching = diff_page(store, a, b, page=1, page_size=4)
    assert matching == 11
    assert list(rows.kind) == ["right to wrong", "right to wrong", "wrong to right", "wrong to right"]
    assert list(rows.sample_id[:2]) == ["s01", "s02"] and rows.answer_a[0] == "yes" and rows.answer_b[0] == "no"
    changed, matching = diff_page(store, a, b, only_changed=True, page=2, page_size=5)
    assert matching == 8 and list(changed.kind) == ["wrong to right", "wrong to right", "changed, both wrong"]
    only, matching = diff_page(store, a, b, kind="same, right")
    assert matching == 2 and set(only.sample_id) == {"s09", "s11"}


def test_runs_on_other_data_or_unknown_runs_are_refused_with_the_reason(two_runs):
    store, a, _ = two_runs
    elsewhere = add_run(store, "other", {k: v[1] for k, v in WORKED.items()}, dataset="vqa-rad")
    with pytest.raises(run_diff.DiffError, match=f"run {a} is on phantom/test and run {elsewhere} on vqa-rad/test"):
        run_diff.compare_runs(a, elsewhere, store)
    with pytest.raises(run_diff.DiffError, match="no run 999"):
        run_diff.compare_runs(a, 999, store)
    with pytest.raises(run_diff.DiffError, match="against itself"):
        run_diff.compare_runs(a, a, store)
    disjoint = add_run(store, "few", {k: v[1] for k, v in WORKED.items()}, only={"s01"})
    limited = add_run(store, "other-few", {k: v[2] for k, v in WORKED.items()}, only={"s02"})
    with pytest.raises(run_diff.DiffError, match="share no sample"):
        run_diff.compare_runs(disjoint, limited, store)


def test_report_diff_prints_the_summary_and_writes_the_changed_samples(two_runs, tmp_path, capsys):
    from medvqa.cli import main

    _, a, b = two_runs
    out = tmp_path / "changed.csv"
    assert main(["report", "--diff", str(a), str(b), "--csv", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "11 shared samples of phantom/test; 8 changed" in printed
    assert f"8 changed samples written to {out}" in printed
    written = pd.read_csv(out)
    assert len(written) == 8 and list(written.kind[:2]) == ["right to wrong", "right to wrong"]
    assert main(["report", "--diff", str(a), "12345"]) == 2
    assert "no run 12345" in capsys.readouterr().err


def test_the_slice_finder_ranks_subsets_by_the_difference_with_image_resampled_intervals(two_runs):
    from medvqa.metrics import paired_bootstrap
    from medvqa.slice_finder import differing_slices
    from medvqa.store.diffs import paired_outcomes

    store, a, b = two_runs
    outcomes = paired_outcomes(store, a, b)
    assert len(outcomes) == 11 and outcomes.correct_a.sum() == 4 and outcomes.correct_b.sum() == 7
    found = differing_slices(outcomes, min_n=5)
    # question type, answer type and organ have one value each here: only the modalities form subsets
    assert list(found.subset) == ["modality = MR", "modality = CT"]
    assert list(found.n) == [6, 5]
    assert found.difference.tolist() == pytest.approx([5 / 6, -2 / 5])
    mr = outcomes[outcomes.modality == "MR"]
    expected = paired_bootstrap(mr.correct_b, mr.correct_a, 1000, 0, clusters=mr.image_id)
    assert (found.ci_low[0], found.ci_high[0]) == pytest.approx((expected["ci_low"], expected["ci_high"]))
    assert found.ci_low[0] <= found.difference[0] <= found.ci_high[0]
    assert differing_slices(outcomes, min_n=7).empty  # no subset holds seven questions


def test_the_slice_finder_resamples_images_not_questions():
    import pandas as pd

    from medvqa.slice_finder import differing_slices

    # 40 questions on 4 images: B is right on every question of two images, A on none; the image-level interval is
    # wider than one that treats the 40 questions as independent
    outcomes = pd.DataFrame({"sample_id": [f"q{i}" for i in range(40)],
                             "image_id": [f"img{i // 10}" for i in range(40)], "question_type": "PRES",
                             "answer_type": "closed", "modality": ["CT", "MR"] * 20,
                             "organ": "chest", "correct_a": 0, "correct_b": [int(i < 20) for i in range(40)]})
    by_image = differing_slices(outcomes, min_n=10).set_index("subset").loc["modality = CT"]
    by_question = differing_slices(outcomes.assign(image_id=outcomes.sample_id), min_n=10).set_index(
        "subset").loc["modality = CT"]
    assert by_image.difference == by_question.difference == 0.5
    assert (by_image.ci_high - by_image.ci_low) > (by_question.ci_high - by_question.ci_low)
