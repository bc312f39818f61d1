"""Deciding from stored results: `medvqa report` (leaderboard, pairs, grounding, confidence, case reports),
`calibrate` and `power`."""
from __future__ import annotations

import argparse
from pathlib import Path

from .arguments import _count, _output_file


def _report_args(rep: argparse.ArgumentParser) -> None:
    rep.add_argument("--csv", default=None, type=_output_file,
                     help="also write the leaderboard here (default data_cache/leaderboard.csv); with --diff, the "
                          "changed samples (default data_cache/diff-A-B.csv)")
    rep.add_argument("--compare", nargs=2, metavar=("A", "B"))
    rep.add_argument("--diff", nargs=2, type=int, metavar=("RUN_A", "RUN_B"),
                     help="a baseline run against a candidate run on the same samples: flips (right to wrong, wrong "
                          "to right) with the exact McNemar test, by question type, answer type, modality and organ; "
                          "the changed samples written as CSV")
    rep.add_argument("--pairs", action="store_true", help="every pair of models on --dataset/--split: paired "
                     "differences, exact McNemar with Holm's correction, rank intervals and letter groups")
    rep.add_argument("--grounding", action="store_true", help="accuracy with real, swapped and blank images per model "
                     "on --dataset, and the share each keeps without the image")
    rep.add_argument("--confidence", action="store_true",
                     help="calibration and selective answering of each model's newest plain run on --dataset/--split")
    rep.add_argument("--dataset", default="phantom")
    rep.add_argument("--split", default="test")
    rep.add_argument("--ablation", default="none")
    rep.add_argument("--bootstrap", choices=["image", "question"], default="image",
                     help="the paired bootstrap resamples images (default) or single questions")
    rep.add_argument("--cases", metavar="FOLDER", default=None,
                     help="write one HTML case report per sample on which the models disagree into FOLDER")
    rep.add_argument("--models", nargs="+", default=None, help="with --cases or --pairs: these models (default "
                     "every one evaluated on --dataset/--split)")
    rep.add_argument("--limit", type=_count, default=20, help="with --cases: at most this many cases (default 20)")
    rep.add_argument("--no-maps", action="store_true", help="with --cases: skip the relevance maps (a backward pass "
                     "per model and case)")


def _report_diff(args) -> int:
    from .. import config, run_diff, spreadsheet

    baseline, candidate = args.diff
    diff = run_diff.compare_runs(baseline, candidate)
    print("\n".join(diff.lines()))
    path = Path(args.csv or config.data_cache_dir() / f"diff-{baseline}-{candidate}.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    spreadsheet.to_csv(run_diff.changed_rows(baseline, candidate), path)
    print(f"{diff.changed} changed samples written to {path}")
    return 0


def _report_cases(args) -> int:
    from .. import cases

    found = cases.disagreement_cases(args.dataset, args.split, args.models, limit=args.limit,
                                     with_maps=not args.no_maps, progress=print)
    if not found:
        print(f"the models agree on every sample of {args.dataset}/{args.split}: no case written")
        return 0
    for case in found:
        cases.write(case, args.cases)
    print(f"wrote {len(found)} case reports to {args.cases}")
    return 0


def _report_confidence(args) -> int:
    import pandas as pd

    from .. import confidence
    from ..store import Store

    rows = Store().metrics(latest=True, metric=confidence.STATISTICS, datasets=[args.dataset], splits=[args.split])
    table = confidence.table(rows, "all")
    if table.empty:
        print(f"no finished plain run on {args.dataset}/{args.split}: run `medvqa eval` first")
        return 0
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(table.fillna("—").to_string(index=False))
    print("value (95% interval, images resampled); n/a: the model gives no score. Definitions: docs/metrics.md")
    return 0


def _report_grounding(args) -> int:
    import pandas as pd

    from .. import leaderboard

    table = leaderboard.grounding(datasets=[args.dataset])
    if table.empty:
        print(f"no model has both a plain and a blank-image run on {args.dataset}: run `medvqa eval --model NAME "
              f"--dataset {args.dataset} --ablation none,swap-images,blank-image`")
        return 0
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))
    print(f"kept: blank-image accuracy / real-image accuracy (95% interval, images resampled); ignores_image: keeps "
          f"{leaderboard.IGNORES_IMAGE:.0%} or more")
    return 0


def _report_pairs(args) -> int:
    import pandas as pd

    from .. import leaderboard

    report = leaderboard.pairwise(args.dataset, args.split, args.ablation, args.models, bootstrap=args.bootstrap)
    models = report.models.assign(rank=[f"{r} ({lo}-{hi})" if lo != hi else f"{r}" for r, lo, hi in zip(
        report.models["rank"], report.models.rank_low, report.models.rank_high)])
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.float_format", "{:.3f}".format):
        print(f"{args.dataset}/{args.split} ({args.ablation}): {len(models)} models, {report.shared} samples shared "
              "by all; rank (95% interval); models sharing a letter are not significantly different")
        print(models[["model", "n", "accuracy", "rank", "group"]].to_string(index=False))
        print(f"\n{len(report.pairs)} pairs, each over the samples both answered; 95% bootstrap interval "
              f"({args.bootstrap}s resampled), exact McNemar p, Holm-corrected over all pairs")
        columns = ["model_a", "model_b", "n", "difference", "ci_low", "ci_high", "only_a", "only_b", "p_value",
                   "p_holm", "significant"]
        print(report.pairs[columns].to_string(index=False, formatters={
            "p_value": "{:.2g}".format, "p_holm": "{:.2g}".format}))
    return 0


def _calibrate_args(cal: argparse.ArgumentParser) -> None:
    cal.add_argument("--model", required=True)
    cal.add_argument("--dataset", default="phantom")
    cal.add_argument("--split", default="validation", help="the split to fit on (default validation; never the "
                     "training split)")
    cal.add_argument("--target-risk", type=float, default=0.10, help="the most wrong answers allowed among those the "
                     "model gives; under the threshold chosen for it, the model defers (default 0.10)")
    cal.add_argument("--limit", type=_count, default=None, help="at most this many questions of each split")


def _calibrate(args) -> int:
    from ..rerun import calibrate

    out = calibrate(args.model, args.dataset, args.split, args.target_risk, limit=args.limit)
    c, test = out["calibration"], out["test"]
    print(f"{args.model}: Platt scaling fitted on {c.fitted_on['n']} scored answers of {args.dataset}/"
          f"{c.fitted_on['split']} (slope {c.slope:.3f}, intercept {c.intercept:+.3f}); written to {out['path']}")
    print(f"  {c.describe()}")
    if "ece_15_equal_width" in test and "ece_15_equal_width_calibrated" in test:
        print(f"  test ECE (15 bins): {test['ece_15_equal_width']:.3f} before, "
              f"{test['ece_15_equal_width_calibrated']:.3f} calibrated")
    if "coverage_at_threshold" in test:
        kept = test.get("selective_accuracy")
        print(f"  on test it answers {test['coverage_at_threshold']:.1%} of questions"
              + (f", {kept:.1%} of them right" if kept is not None else "")
              + f" (accuracy answering everything: {test.get('accuracy', float('nan')):.1%})")
    return 0


def _power_args(pw: argparse.ArgumentParser) -> None:
    pw.add_argument("--dataset", default="phantom")
    pw.add_argument("--split", default="test")
    pw.add_argument("--effect", type=float, default=0.03, help="the accuracy difference to detect (default 0.03)")


def _power(args) -> int:
    from .. import leaderboard

    p = leaderboard.power(args.dataset, args.split, args.effect)
    print(f"{p['dataset']}/{p['split']}: over {p['pairs']} pairs of stored runs, two models disagree on "
          f"{p['discordance']:.1%} of questions (median); image clustering multiplies the variance by "
          f"{p['design_effect']:.2f}")
    if p["questions"] is None:
        print(f"  a difference of {p['effect']:.1%} is larger than the models' disagreement: no sample size gives it")
    else:
        print(f"  to detect {p['effect']:.1%} with 80% power at 5%: {p['questions']:,} questions "
              f"({p['questions_independent']:,} if questions were independent), about {p['images']:,} images")
    detectable = "nothing" if p["detectable"] != p["detectable"] else f"{p['detectable']:.1%}"
    print(f"  this split ({p['n']:,} shared questions per pair, median) detects a difference of {detectable}")
    return 0


def _report(args) -> int:
    from .. import config, leaderboard, spreadsheet

    if args.cases:
        return _report_cases(args)
    if args.diff:
        return _report_diff(args)
    if args.compare:
        c = leaderboard.compare(*args.compare, dataset=args.dataset, split=args.split, ablation=args.ablation,
                           bootstrap=args.bootstrap)
        pb, mc = c["paired_bootstrap"], c["mcnemar"]
        print(f"{c['model_a']} vs {c['model_b']} on {c['dataset']}/{args.split} ({args.ablation}), {c['n']} paired "
              f"samples: accuracy {c['accuracy_a']:.3f} vs {c['accuracy_b']:.3f}")
        print(f"  difference {pb['difference']:+.3f}, 95% CI [{pb['ci_low']:+.3f}, {pb['ci_high']:+.3f}], "
              f"paired bootstrap p = {pb['p_value']:.4f}")
        print(f"  McNemar: only A right {mc['only_a']}, only B right {mc['only_b']}, exact p = {mc['p_value']:.4f}")
        return 0
    if args.confidence:
        return _report_confidence(args)
    if args.pairs:
        return _report_pairs(args)
    if args.grounding:
        return _report_grounding(args)
    board = leaderboard.leaderboard()
    if board.empty:
        print("no finished runs in the store: run `medvqa eval` first")
        return 0
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.3f}".format):
        print(board.to_string(index=False))
    path = args.csv or str(config.data_cache_dir() / "leaderboard.csv")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    spreadsheet.to_csv(board, path)
    print(f"written to {path}")
    return 0
