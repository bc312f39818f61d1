"""Med-VQA metrics with the field's exact definitions (docs/metrics.md gives the sources and the pitfalls avoided).

All per-sample functions take one prediction and one gold answer and return a float in [0, 1].
"""
from __future__ import annotations

import re
import string
from collections import Counter
from functools import lru_cache

# Bumped whenever a stored metric's definition changes; every run's evaluation card records the version it used.
DEFINITIONS_VERSION = 3
_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_YES_NO = re.compile(r"\b(yes|no)\b")
DECLINES = ("unanswerable", "cannot be answered", "cannot answer", "can not be answered", "cannot be determined",
            "cannot determine", "not possible to", "unable to", "i don't know", "i do not know", "unknown",
            "not applicable", "not visible", "not shown", "no such", "n/a")


def normalize(text: str) -> str:
    """SQuAD v1.1: lowercase, delete punctuation (not replace), drop articles, collapse whitespace."""
    text = "".join(c for c in str(text).lower() if c not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


# a question opening with an auxiliary verb asks yes or no ("is there a mass?", "does it show ...?")
_YES_NO_OPENERS = {"is", "are", "was", "were", "does", "do", "did", "can", "could", "has", "have", "had", "will",
                   "would", "should", "shall", "may", "might", "must"}


def is_yes_no_question(question: str) -> bool:
    words = normalize(question).split()
    return bool(words) and words[0] in _YES_NO_OPENERS


def fits_question(answer: str, question: str) -> bool:
    """Whether an answer is of the kind the question asks: yes or no to a yes/no question, anything else to an open
    one ("yes" does not answer "What imaging modality is this?")."""
    is_yes_no = normalize(answer) in ("yes", "no")
    return is_yes_no if is_yes_no_question(question) else not is_yes_no


def tokens(text: str) -> list[str]:
    return normalize(text).split()


def exact_match(pred: str, gold: str) -> float:
    return float(normalize(pred) == normalize(gold))


def contains_match(pred: str, gold: str) -> float:
    """The gold answer inside the prediction (Med-Idefics' lenient score), as whole words: "no" is not in "normal"."""
    p, g = tokens(pred), tokens(gold)
    if not g:
        return float(not p)
    return float(any(p[i : i + len(g)] == g for i in range(len(p) - len(g) + 1)))


def token_f1(pred: str, gold: str) -> float:
    """SQuAD token F1 over multisets (Counter overlap), 0 when nothing overlaps; both empty counts as a match."""
    p, g = tokens(pred), tokens(gold)
    if not p or not g:
        return float(p == g)
    same = sum((Counter(p) & Counter(g)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def token_recall(pred: str, gold: str) -> float:
    """LLaVA-Med open recall: share of gold tokens present in the prediction (never penalises verbosity)."""
    g = tokens(gold)
    if not g:
        return 0.0
    present = set(tokens(pred))
    return sum(t in present for t in g) / len(g)


def first_yes_no(pred: str) -> str | None:
    match = _YES_NO.search(normalize(pred))
    return match.group(1) if match else None


def closed_correct(pred: str, gold: str) -> float:
    """Yes/no gold: the prediction's first whole-word yes or no must equal it ("normal" is not "no", "yes, a nodule"
    is yes). Other closed answers (SLAKE's "Left", "CT"): normalised exact match."""
    g = normalize(gold)
    if g in ("yes", "no"):
        return float(first_yes_no(pred) == g)
    return exact_match(pred, gold)


def correct(pred: str, gold: str, answer_type: str) -> float:
    """The per-sample verdict behind `accuracy`: closed accuracy for closed questions, exact match for open ones."""
    return closed_correct(pred, gold) if answer_type == "closed" else exact_match(pred, gold)


def bleu(pred: str, gold: str, n: int = 1) -> float:
    """Sentence-level BLEU-n as Med-VQA papers compute it: nltk, uniform weights, smoothing method1 (short answers)."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    p, g = tokens(pred), tokens(gold)
    if not p or not g:
        return 0.0
    return float(sentence_bleu([g], p, weights=(1.0 / n,) * n, smoothing_function=SmoothingFunction().method1))


def bleu_counts(pred: str, gold: str, max_n: int = 4) -> list[float]:
    """One sample's BLEU statistics on SQuAD-normalised tokens: clipped n-gram matches for n = 1..max_n, n-grams
    guessed, prediction length, reference length. Summed over a corpus they give corpus BLEU (corpus_bleu)."""
    p, g = tokens(pred), tokens(gold)
    correct, guessed = [], []
    for n in range(1, max_n + 1):
        p_grams = Counter(tuple(p[i : i + n]) for i in range(len(p) - n + 1))
        g_grams = Counter(tuple(g[i : i + n]) for i in range(len(g) - n + 1))
        correct.append(sum(min(c, g_grams[gram]) for gram, c in p_grams.items()))
        guessed.append(max(len(p) - n + 1, 0))
    return [*correct, *guessed, len(p), len(g)]


def corpus_bleu_from_counts(counts, max_n: int = 4):
    """Corpus BLEU-1..max_n from summed (or mean) bleu_counts, exactly as pycocoevalcap computes it: pooled counts,
    the geometric mean of the 1..n precisions, no smoothing except its epsilons (1e-15 added to matches, 1e-9 to
    guesses: a corpus with no matching n-gram scores ~1e-4 rather than 0), brevity penalty exp(1 - ref/hyp) when
    the corpus is shorter than its references."""
    import numpy as np

    tiny, small = 1e-15, 1e-9
    counts = np.asarray(counts, dtype=float)
    correct, guessed = counts[..., :max_n], counts[..., max_n : 2 * max_n]
    hyp, ref = counts[..., 2 * max_n], counts[..., 2 * max_n + 1]
    log_p = np.log((correct + tiny) / (guessed + small))
    scores = np.exp(np.cumsum(log_p, axis=-1) / np.arange(1, max_n + 1))
    ratio = (hyp + tiny) / (ref + small)
    brevity = np.where(ratio < 1, np.exp(1 - 1 / ratio), 1.0)
    return scores * brevity[..., None]


def corpus_bleu(preds, golds, max_n: int = 4) -> list[float]:
    """Corpus-level BLEU-1..max_n over paired predictions and gold answers (one reference each)."""
    import numpy as np

    counts = np.sum([bleu_counts(p, g, max_n) for p, g in zip(preds, golds)], axis=0)
    return [float(v) for v in corpus_bleu_from_counts(counts, max_n)]


@lru_cache(maxsize=1)
def meteor_backend() -> tuple[object | None, str]:
    """(wordnet, label): nltk's WordNet when installed, else a synonym-free stand-in labelled as such."""
    try:
        from nltk.corpus import wordnet

        wordnet.ensure_loaded()
        return wordnet, "METEOR"
    except Exception:  # noqa: BLE001 - LookupError when the corpus is absent; never download at run time
        class NoSynonyms:
            def synsets(self, *args, **kwargs):
                return []

        return NoSynonyms(), "METEOR (no synonyms)"


def meteor(pred: str, gold: str) -> float:
    from nltk.translate.meteor_score import meteor_score

    p, g = tokens(pred), tokens(gold)
    if not p or not g:
        return 0.0
    return float(meteor_score([g], p, wordnet=meteor_backend()[0]))


def declines(pred: str) -> bool:
    """Whether an answer declines (for the probe: anything else asserts something about the image)."""
    text = str(pred).lower()
    return not text.strip() or any(phrase in text for phrase in DECLINES)


def score(pred: str, gold: str, answer_type: str) -> dict[str, float]:
    """Per-sample values stored with each prediction. `correct` is closed accuracy for closed questions and exact
    match for open ones: the paired tests and the overall accuracy use it."""
    values = {
        "exact_match": exact_match(pred, gold),
        "contains": contains_match(pred, gold),
        "token_f1": token_f1(pred, gold),
        "token_recall": token_recall(pred, gold),
        "bleu1": bleu(pred, gold, 1),
        "bleu4": bleu(pred, gold, 4),
        "meteor": meteor(pred, gold),
        "declined": float(declines(pred)),
    }
    values["correct"] = correct(pred, gold, answer_type)
    return values


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def _cluster_index(clusters, n: int):
    """Each sample's cluster number 0..k-1; every sample its own cluster when `clusters` is None."""
    import numpy as np

    if clusters is None:
        return np.arange(n)
    return np.unique(np.asarray(list(clusters), dtype=str), return_inverse=True)[1]


def _cluster_draws(k: int, n_resamples: int, seed: int, chunk: int, dtype=float):
    """Bootstrap draws of k clusters with replacement: how often each cluster is drawn (resamples x k), in chunks of
    at most `chunk` resamples. The one draw behind every bootstrap here."""
    import numpy as np

    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_resamples, chunk))
    for start in range(0, n_resamples, chunk):
        rows = min(chunk, n_resamples - start)
        # k uniform picks per resample, counted per cluster: the multinomial(k, 1/k) counts, 7x faster to draw
        picks = rng.integers(0, k, size=(rows, k)) + (np.arange(rows) * k)[:, None]
        yield np.bincount(picks.ravel(), minlength=rows * k).reshape(rows, k).astype(dtype)


def resampled_means(data, clusters=None, n_resamples: int = 1000, seed: int = 0):
    """Bootstrap means of each row of `data` (metrics x samples): resamples x metrics. With `clusters` (a label per
    sample, e.g. its image) whole clusters are drawn with replacement and the mean is pooled over their samples, so
    questions that share an image move together; without, each sample is its own cluster (the per-question
    bootstrap). Resampled in chunks of bounded size: memory does not grow with resamples x samples."""
    import numpy as np

    data = np.atleast_2d(np.asarray(data, dtype=float))
    index = _cluster_index(clusters, data.shape[1])
    sums = np.stack([np.bincount(index, weights=row) for row in data])
    sizes = np.bincount(index).astype(float)
    return np.concatenate([(counts @ sums.T) / (counts @ sizes)[:, None]
                           for counts in _cluster_draws(sizes.size, n_resamples, seed, 2_000_000 // sizes.size)])


def resample_counts(clusters, n_resamples: int, seed: int = 0, budget: int = 2_000_000, dtype=float):
    """Bootstrap counts per sample (resamples x samples), yielded in chunks of at most about `budget` cells: each
    resample draws as many clusters as there are, with replacement, and every sample counts its cluster's draws
    (whole images together). `clusters`: a label per sample, or the number of samples when each is its own."""
    index = _cluster_index(None if isinstance(clusters, int) else clusters,
                           clusters if isinstance(clusters, int) else 0)
    for counts in _cluster_draws(int(index.max()) + 1, n_resamples, seed, budget // index.size, dtype):
        yield counts[:, index]


def bootstrap_ci(values, n_resamples: int = 1000, seed: int = 0, level: float = 0.95,
                 clusters=None) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean (clustered when `clusters` is given)."""
    return bootstrap_cis({"value": list(values)}, n_resamples, seed, level, clusters)["value"]


def bootstrap_cis(columns: dict[str, list], n_resamples: int = 1000, seed: int = 0,
                  level: float = 0.95, clusters=None) -> dict[str, tuple[float, float]]:
    """Percentile CIs of several per-sample metrics over the same samples, from one shared set of resamples;
    `clusters` (an image id per sample) resamples images rather than questions."""
    import numpy as np

    names = list(columns)
    data = np.asarray([list(columns[n]) for n in names], dtype=float)  # metrics x samples
    if data.size == 0:
        return {n: (float("nan"), float("nan")) for n in names}
    means = resampled_means(data, clusters, n_resamples, seed)  # resamples x metrics
    tail = (1 - level) / 2 * 100
    lows, highs = np.percentile(means, tail, axis=0), np.percentile(means, 100 - tail, axis=0)
    return {n: (float(lo), float(hi)) for n, lo, hi in zip(names, lows, highs)}


def mcnemar(a_correct, b_correct) -> dict:
    """Exact McNemar test on paired 0/1 outcomes (statsmodels' `mcnemar(table, exact=True)`): the two-sided binomial
    test of the discordant pairs, only_a = only A right, only_b = only B right."""
    import numpy as np
    from scipy.stats import binom

    a, b = np.round(np.asarray(list(a_correct), float)) > 0, np.round(np.asarray(list(b_correct), float)) > 0
    if a.shape != b.shape:
        raise ValueError("McNemar needs the same samples for both models")
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    n = only_a + only_b
    p = min(1.0, 2 * float(binom.cdf(min(only_a, only_b), n, 0.5))) if n else 1.0
    return {"only_a": only_a, "only_b": only_b, "p_value": p}


def paired_bootstrap(a_values, b_values, n_resamples: int = 2000, seed: int = 0, clusters=None) -> dict:
    """Mean difference A - B over the same samples, its 95% CI, and the two-sided bootstrap p-value (resampling
    images when `clusters` gives each sample's image)."""
    import numpy as np

    a, b = np.asarray(list(a_values), float), np.asarray(list(b_values), float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("paired bootstrap needs the same non-empty samples for both models")
    diff = a - b
    means = resampled_means(diff, clusters, n_resamples, seed)[:, 0]
    p = 2 * min((means <= 0).mean(), (means >= 0).mean())
    return {"difference": float(diff.mean()), "ci_low": float(np.percentile(means, 2.5)),
            "ci_high": float(np.percentile(means, 97.5)), "p_value": float(min(1.0, p))}
