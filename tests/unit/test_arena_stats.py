"""Arena statistics held to statsmodels (style-controlled Bradley-Terry as a logistic regression, its sandwich
intervals) and to worked examples (style counts, rank spread, votes to flip)."""
import numpy as np
import pandas as pd
import pytest

from medvqa import arena_stats
from medvqa.arena_stats import Flip


def simulated_votes(seed: int, n: int = 600, models: int = 5, length_effect: float = 0.8) -> pd.DataFrame:
    """Votes where a longer answer wins more often than its model's strength says, with no ties."""
    rng = np.random.default_rng(seed)
    names, strength = [f"m{k}" for k in range(models)], np.linspace(0, 1.5, models)
    rows = []
    for _ in range(n):
        i, j = rng.choice(models, 2, replace=False)
        la, lb, ha, hb = *rng.integers(1, 30, 2), *rng.integers(0, 3, 2)
        logit = strength[i] - strength[j] + length_effect * (la - lb) / (la + lb) - 0.3 * (ha - hb)
        rows.append(dict(model_a=names[i], model_b=names[j],
                         winner="model_a" if rng.random() < 1 / (1 + np.exp(-logit)) else "model_b",
                         answer_a=" ".join(["word"] * la + ["possibly"] * ha),
                         answer_b=" ".join(["word"] * lb + ["possibly"] * hb) + "\n- **a list item**" * (seed % 2)))
    return pd.DataFrame(rows)


def test_style_counts_on_a_worked_answer():
    text = "## Findings\n- **Mass** in the left lobe, possibly malignant.\n- Cannot exclude `edema`."
    # tokens: 14 words; hedges: possibly, cannot; markdown: a heading, 2 list items, a bold span, a code span
    assert arena_stats.style_counts(text) == (14, 2, 5)


@pytest.mark.parametrize("seed", [0, 1])
def test_style_controlled_fit_equals_a_logistic_regression(seed):
    import statsmodels.api as sm

    votes = simulated_votes(seed)
    models = sorted(set(votes.model_a) | set(votes.model_b))
    x, y, w = arena_stats.model_design(votes, models)
    style = arena_stats.style_design(votes.answer_a, votes.answer_b)
    varies = np.abs(style).sum(axis=0) > 0
    design = np.hstack([x[:, 1:], style[:, varies]])  # the first model is the reference: strengths are relative
    reference = sm.Logit(y, design).fit(disp=0, cov_type="HC0")
    ratings, coefficients = arena_stats.styled_ratings(votes, prior=0.0)
    fitted = coefficients.dropna()
    assert np.allclose(fitted.coefficient, reference.params[len(models) - 1:], atol=1e-6)
    theta = ratings.set_index("model").rating * np.log(10) / 400
    assert np.allclose((theta - theta[models[0]])[models[1:]], reference.params[: len(models) - 1], atol=1e-6)
    # the sandwich interval of each style coefficient: statsmodels' HC0 robust standard error
    z = 1.959963984540054
    assert np.allclose((fitted.ci_high - fitted.coefficient) / z, reference.bse[len(models) - 1:], rtol=1e-5)
    assert coefficients.set_index("feature").loc["length", "coefficient"] > 0  # longer answers won more


def test_style_control_moves_a_model_that_wins_by_length_down():
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(800):  # equal models; "verbose" always answers at length and wins 70% of the time for it
        verbose_first = rng.random() < 0.5
        long, short = " ".join(["word"] * 40), "word"
        win = rng.random() < 0.7
        first, second = ("verbose", "terse") if verbose_first else ("terse", "verbose")
        rows.append(dict(model_a=first, model_b=second, answer_a=long if verbose_first else short,
                         answer_b=short if verbose_first else long,
                         winner=("model_a" if win == verbose_first else "model_b")))
    for _ in range(800):  # elsewhere both models answer at any length, and length wins
        la, lb = rng.integers(1, 40, 2)
        pick = rng.random() < 0.5
        rows.append(dict(model_a="verbose" if pick else "terse", model_b="terse" if pick else "verbose",
                         answer_a=" ".join(["word"] * la), answer_b=" ".join(["word"] * lb),
                         winner="model_a" if (la > lb) == (rng.random() < 0.7) else "model_b"))
    votes = pd.DataFrame(rows)
    plain, _ = arena_stats.styled_ratings(votes, style=False)
    styled, coefficients = arena_stats.styled_ratings(votes)
    gap = lambda board: board.set_index("model").rating.pipe(lambda r: r["verbose"] - r["terse"])  # noqa: E731
    assert gap(plain) > 50 and abs(gap(styled)) < gap(plain) / 2
    assert coefficients.set_index("feature").loc["length", "ci_low"] > 0


def test_rank_spread_on_a_worked_board():
    board = pd.DataFrame({"model": list("abcd"), "rating": [1100, 1080, 990, 900],
                          "ci_low": [1060, 1040, 950, np.nan], "ci_high": [1140, 1120, 1030, np.nan]})
    spread = arena_stats.rank_spread(board).set_index("model")
    # a and b overlap; c lies below both; d has no interval, so it could be anywhere, above any of them too
    assert spread.loc["a", ["rank_best", "rank_worst"]].tolist() == [1, 3]
    assert spread.loc["b", ["rank_best", "rank_worst"]].tolist() == [1, 3]
    assert spread.loc["c", ["rank_best", "rank_worst"]].tolist() == [3, 4]
    assert spread.loc["d", ["rank_best", "rank_worst"]].tolist() == [1, 4]


def test_votes_to_flip_on_a_worked_pair():
    # A beat B 6 times, B beat A 3 times: removing 3 of A's wins leaves 3-3, a tie; 2 leave A ahead
    votes = pd.DataFrame({"model_a": ["A"] * 9, "model_b": ["B"] * 9, "winner": ["model_a"] * 6 + ["model_b"] * 3})
    # the first-order estimate says 5: each removal narrows the gap more than the one before it
    assert arena_stats.votes_to_flip(votes, "A", "B") == Flip(3, True, 5)
    assert arena_stats.votes_to_flip(votes, "B", "A").votes == 0  # already at or above
    grouped = pd.DataFrame({"model_a": ["A", "A"], "model_b": ["B", "B"], "winner": ["model_a", "model_b"],
                            "count": [6, 3]})
    assert arena_stats.votes_to_flip(grouped, "A", "B").votes == 3  # counted rows are the same votes


def test_a_board_declares_first_only_when_removing_one_percent_cannot_change_it():
    clear = simulated_votes(0, n=400, length_effect=0.0)
    top, flips = arena_stats.robust_first(clear, share=0.01)
    assert top == "m4" and set(flips) == {"m0", "m1", "m2", "m3"}
    close = pd.DataFrame({"model_a": ["A"] * 200, "model_b": ["B"] * 200,
                          "winner": ["model_a"] * 101 + ["model_b"] * 99})
    top, flips = arena_stats.robust_first(close, share=0.01)
    assert top is None and flips["B"].votes == 2 and flips["B"].exact


def planted_arena(seed: int, honest: int = 20, votes_each: int = 150) -> tuple[pd.DataFrame, set[str]]:
    """20 models; honest raters vote by the models' strengths; planted: 3 always pick side A, 3 vote at random, 3
    boost the weakest model whenever it appears (honest otherwise). Every rater answers new cases, read in time."""
    rng = np.random.default_rng(seed)
    strength = rng.normal(0, 1, 20)
    weakest = int(np.argmin(strength))
    raters = [("honest", f"h{k}") for k in range(honest)] + [(kind, f"{kind}{k}") for kind in
                                                             ("always-a", "random", "colluder") for k in range(3)]
    rows = []
    for kind, name in raters:
        for v in range(votes_each):
            i, j = rng.choice(20, 2, replace=False)
            p = 1 / (1 + np.exp(strength[j] - strength[i]))
            a_wins = {"always-a": True, "random": rng.random() < 0.5,
                      "colluder": i == weakest if weakest in (i, j) else rng.random() < p}.get(kind, rng.random() < p)
            rows.append(dict(rater=name, model_a=f"m{i}", model_b=f"m{j}", winner="model_a" if a_wins else "model_b",
                             image_hash=f"{name}-{v}", question="q", answer_a="a b c", answer_b="d e f", shown_s=9.0))
    return pd.DataFrame(rows), {name for kind, name in raters if kind != "honest"}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_raters_are_flagged_and_honest_ones_are_not(seed):
    votes, planted = planted_arena(seed)
    report = arena_stats.suspicious_raters(votes)
    flagged = set(report[report.concerns.str.len() > 0].rater)
    assert len(flagged & planted) >= 0.9 * len(planted), report
    assert len(flagged - planted) <= 1, report  # at most 1 honest rater in 20
    reasons = report.set_index("rater").concerns
    assert all("prefers one side" in reasons[f"always-a{k}"] for k in range(3))
    assert all(any(f.startswith("favours") for f in reasons[f"colluder{k}"]) for k in range(3))


def test_fast_and_repeated_votes_are_flagged_with_their_evidence():
    votes, _ = planted_arena(0, honest=20, votes_each=40)
    rushed = votes.rater == "h0"
    votes.loc[rushed, "shown_s"] = 0.4  # two three-word answers take 1.75 s to read
    repeater = votes.rater == "h1"
    votes.loc[repeater, "image_hash"] = "same"
    report = arena_stats.suspicious_raters(votes).set_index("rater")
    assert report.loc["h0", "fast_share"] == 1.0 and "votes faster than reading" in report.loc["h0", "concerns"]
    assert report.loc["h1", "repeat_share"] == pytest.approx(39 / 40)
    assert "votes repeated cases" in report.loc["h1", "concerns"]
    assert report.loc["h2", "fast_share"] == 0.0 and report.loc["h2", "repeat_share"] == 0.0
