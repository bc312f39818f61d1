import math

import numpy as np
import pandas as pd
import pytest

from medvqa import ratings


def simulate(true: dict[str, float], n: int, seed: int = 0, tie_share: float = 0.1) -> pd.DataFrame:
    """Battles between random pairs whose expected score for A (a tie counting half) is the Bradley-Terry probability
    on the Elo scale: a share of ties, the remaining outcomes won with the probability that keeps that expectation."""
    rng = np.random.default_rng(seed)
    names = list(true)
    rows = []
    for _ in range(n):
        a, b = rng.choice(names, size=2, replace=False)
        p_a = 1 / (1 + 10 ** ((true[b] - true[a]) / 400))
        u = rng.random()
        if u < tie_share:
            winner = "tie" if rng.random() < 0.5 else "tie (bothbad)"
        else:
            winner = "model_a" if rng.random() < (p_a - tie_share / 2) / (1 - tie_share) else "model_b"
        rows.append((a, b, winner))
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner"])


def test_bradley_terry_recovers_order_and_ratings_from_2000_votes():
    true = {"vilt": 850.0, "blip": 950.0, "llava": 1050.0, "idefics2": 1150.0}  # mean 1000, as the fit is anchored
    board = ratings.bradley_terry(simulate(true, 2000), n_bootstrap=200)
    assert list(board["model"]) == ["idefics2", "llava", "blip", "vilt"]
    for row in board.itertuples():
        assert row.ci_low < true[row.model] < row.ci_high, row
        assert row.ci_high - row.ci_low < 80  # 2000 votes pin each rating to within tens of points
    assert board["battles"].sum() == 4000  # every battle counts for both sides
    assert board["rating"].mean() == pytest.approx(1000.0)


def test_bradley_terry_ties_count_half_and_symmetry():
    votes = pd.DataFrame({"model_a": ["x", "y"], "model_b": ["y", "x"], "winner": ["model_a", "model_a"]})
    board = ratings.bradley_terry(votes, n_bootstrap=20)
    assert board["rating"].tolist() == pytest.approx([1000.0, 1000.0])  # one win each: equal
    # 3 wins of x and 1 tie out of 4: x scores 3.5 of 4, so P(x beats y) = 0.875 -> 400*log10(7) apart
    votes = pd.DataFrame({"model_a": ["x"] * 4, "model_b": ["y"] * 4, "winner": ["model_a"] * 3 + ["tie"]})
    board = ratings.bradley_terry(votes, n_bootstrap=20, prior=0).set_index("model")  # the exact MLE
    assert board.loc["x", "rating"] - board.loc["y", "rating"] == pytest.approx(400 * math.log10(7), abs=0.5)
    shrunk = ratings.bradley_terry(votes, n_bootstrap=20).set_index("model")  # the default weak prior pulls in a little
    assert 300 < shrunk.loc["x", "rating"] - shrunk.loc["y", "rating"] < 400 * math.log10(7)


def test_bradley_terry_rejects_unknown_winner_and_handles_empty():
    with pytest.raises(ValueError, match="unknown winner"):
        ratings.bradley_terry(pd.DataFrame({"model_a": ["x"], "model_b": ["y"], "winner": ["left"]}))
    no_votes = pd.DataFrame(columns=["model_a", "model_b", "winner"])
    assert ratings.bradley_terry(no_votes).empty and ratings.win_rate_matrix(no_votes).empty


def test_bradley_terry_stays_finite_when_a_model_never_wins():
    votes = pd.DataFrame({"model_a": ["x"] * 5, "model_b": ["y"] * 5, "winner": ["model_a"] * 5})
    board = ratings.bradley_terry(votes, n_bootstrap=20)
    assert np.isfinite(board["rating"]).all() and board["model"].tolist() == ["x", "y"]
    assert board["rating"].iloc[0] - board["rating"].iloc[1] < 800  # not hundreds of Elo per vote


def test_win_rate_matrix():
    votes = pd.DataFrame({"model_a": ["x", "x", "y", "x"], "model_b": ["y", "y", "x", "z"],
                          "winner": ["model_a", "tie", "model_a", "model_b"]})
    matrix = ratings.win_rate_matrix(votes)
    assert matrix.loc["x", "y"] == pytest.approx(1.5 / 3)  # won 1, tied 1, lost 1
    assert matrix.loc["y", "x"] == pytest.approx(1.5 / 3)
    assert matrix.loc["z", "x"] == 1.0 and math.isnan(matrix.loc["y", "z"])


def test_human_eval_score():
    grades = pd.DataFrame(
        {
            "model": ["a"] * 12 + ["b", "b"],
            "verdict": ["correct", "correct", "partially correct", "incorrect"] * 3 + ["incorrect", "incorrect"],
        }
    )
    scores = ratings.human_eval_score(grades).set_index("model")
    assert scores.loc["a", "score"] == pytest.approx(2.5 / 4) and scores.loc["a", "grades"] == 12
    assert scores.loc["a", "ci_low"] < 0.625 < scores.loc["a", "ci_high"]
    # two grades give a score but no interval (it used to read [0.00, 0.00]: certainty where there is none)
    assert scores.loc["b", "score"] == 0.0 and scores.loc[["b"], ["ci_low", "ci_high"]].isna().all(axis=None)
    with pytest.raises(ValueError, match="unknown verdicts"):
        ratings.human_eval_score(pd.DataFrame({"model": ["a"], "verdict": ["great"]}))


def _two_raters(pairs):
    rows = []
    for k, (va, vb) in enumerate(pairs):
        rows += [("ann", f"s{k}", "m", va), ("bob", f"s{k}", "m", vb)]
    return pd.DataFrame(rows, columns=["rater", "sample_id", "model", "verdict"])


def test_cohen_kappa_worked_example():
    # Wikipedia's example: 50 items; both yes 20, A yes B no 5, A no B yes 10, both no 15.
    # p_o = 35/50 = 0.7; p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.4
    pairs = ([("correct", "correct")] * 20 + [("correct", "incorrect")] * 5 + [("incorrect", "correct")] * 10
             + [("incorrect", "incorrect")] * 15)
    result = ratings.cohen_kappa(_two_raters(pairs), "ann", "bob")
    assert result["items"] == 50
    assert result["observed"] == pytest.approx(0.7) and result["chance"] == pytest.approx(0.5)
    assert result["kappa"] == pytest.approx(0.4)


def test_cohen_kappa_three_categories_and_only_shared_items():
    # p_o = 2/4; A's shares c .5 p .25 i .25, B's c .25 p .25 i .5 -> p_e = .125+.0625+.125 = .3125
    pairs = [("correct", "correct"), ("correct", "partially correct"), ("partially correct", "incorrect"),
             ("incorrect", "incorrect")]
    grades = _two_raters(pairs)
    grades = pd.concat([grades, pd.DataFrame([("ann", "only-ann", "m", "correct")], columns=grades.columns)])
    result = ratings.cohen_kappa(grades, "ann", "bob")
    assert result["items"] == 4
    assert result["kappa"] == pytest.approx((0.5 - 0.3125) / (1 - 0.3125))
    perfect = ratings.cohen_kappa(_two_raters([("correct", "correct"), ("incorrect", "incorrect")]), "ann", "bob")
    assert perfect["kappa"] == pytest.approx(1.0)
    assert math.isnan(ratings.cohen_kappa(_two_raters([("correct", "correct")]), "ann", "bob")["kappa"])
    assert ratings.cohen_kappa(grades, "ann", "nobody")["items"] == 0


def test_a_lone_vote_gives_a_rating_but_no_interval():
    votes = pd.DataFrame({"model_a": ["x"], "model_b": ["y"], "winner": ["model_a"]})
    board = ratings.bradley_terry(votes, n_bootstrap=20).set_index("model")
    assert board.loc["x", "rating"] > board.loc["y", "rating"]
    assert board[["ci_low", "ci_high"]].isna().all(axis=None) and (board.battles == 1).all()


def test_an_anchor_model_is_fixed_at_1000_and_the_gaps_stay():
    votes = simulate({"a": 1100, "b": 1000, "c": 900}, 600)
    free = ratings.bradley_terry(votes, n_bootstrap=30).set_index("model")
    anchored = ratings.bradley_terry(votes, n_bootstrap=30, anchor="c").set_index("model")
    assert anchored.loc["c", "rating"] == 1000 and anchored.loc[["c"], ["ci_low", "ci_high"]].isna().all(axis=None)
    gap = free.loc["a", "rating"] - free.loc["c", "rating"]
    assert anchored.loc["a", "rating"] - 1000 == pytest.approx(gap)


def test_answers_that_name_their_model_are_detected():
    assert ratings.reveals_identity("As LLaVA, I see a mass", "llava-phantom", "llava")
    assert ratings.reveals_identity("blip2-phantom says yes", "blip2-phantom", "blip2")
    assert not ratings.reveals_identity("the blip on the scan is benign", "blip2-phantom", "blip2")
    assert not ratings.reveals_identity("yes", "vilt-phantom", "vilt")


def test_cohen_kappa_has_a_bootstrap_interval_that_narrows_with_more_items():
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(0)
    widths = []
    for n in (40, 400):
        truth = rng.choice(["correct", "incorrect", "partially correct"], n)
        other = np.where(rng.random(n) < 0.8, truth, rng.choice(["correct", "incorrect"], n))
        grades = pd.DataFrame({"rater": ["ann"] * n + ["bob"] * n, "sample_id": [f"s{k}" for k in range(n)] * 2,
                               "model": "m", "verdict": list(truth) + list(other)})
        result = ratings.cohen_kappa(grades, "ann", "bob", n_resamples=500)
        assert result["kappa"] == pytest.approx(cohen_kappa_score(truth, other))
        assert result["ci_low"] < result["kappa"] < result["ci_high"]
        widths.append(result["ci_high"] - result["ci_low"])
    assert widths[1] < widths[0] / 2  # ten times the items: about a third of the width
    few = ratings.cohen_kappa(grades.groupby("rater").head(5), "ann", "bob", n_resamples=500)
    assert few["items"] == 5 and few["ci_low"] != few["ci_low"]  # under 10 items: no interval
