"""The Leaderboard's and the Metrics page's tables as papers print them: Markdown, or LaTeX with booktabs rules; each
value with its 95% interval in brackets (or as sub- and superscripts), the best of each column in bold (every value
tied with it at the printed precision too), a dash where a model has no value. Labels are escaped for the format."""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

FORMATS = ("markdown", "latex")
INTERVAL_STYLES = ("brackets", "scripts")
# metrics where lower is better (errors, calibration gaps, declined answers); every other is higher-is-better
LOWER_IS_BETTER = ("ece", "brier", "aurc", "declined", "latency")
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


@dataclass(frozen=True)
class Column:
    header: str
    value: str  # the frame's column holding the value
    low: str | None = None  # ... and its interval's ends, when it has one
    high: str | None = None
    digits: int = 3
    higher_is_better: bool = True


def lower_is_better(metric: str) -> bool:
    return str(metric).startswith(LOWER_IS_BETTER)


def render(frame: pd.DataFrame, label: str, columns: list[Column], fmt: str = "markdown",
           interval: str = "brackets") -> str:
    """One row per row of `frame` (its `label` column first), one column per Column."""
    if fmt not in FORMATS:
        raise ValueError(f"a table is written as {' or '.join(FORMATS)}, not '{fmt}'")
    if interval not in INTERVAL_STYLES:
        raise ValueError(f"intervals are written as {' or '.join(INTERVAL_STYLES)}, not '{interval}'")
    escape = _latex if fmt == "latex" else _markdown
    best = {c.header: _best(frame[c.value], c) for c in columns}
    body = []
    for _, row in frame.iterrows():
        cells = [escape(str(row[label]))]
        for c in columns:
            value = row[c.value]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                cells.append("--" if fmt == "latex" else "–")
                continue
            shown = f"{float(value):.{c.digits}f}"
            if best[c.header] is not None and shown == best[c.header]:
                shown = rf"\textbf{{{shown}}}" if fmt == "latex" else f"**{shown}**"
            cells.append(shown + _interval(row, c, fmt, interval))
        body.append(cells)
    headers = [escape(label), *(escape(c.header) for c in columns)]
    if fmt == "markdown":
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body]) + "\n"
    lines = [r"\begin{tabular}{l" + "c" * len(columns) + "}", r"\toprule", " & ".join(headers) + r" \\", r"\midrule"]
    lines += [" & ".join(cells) + r" \\" for cells in body]
    return "\n".join([*lines, r"\bottomrule", r"\end{tabular}"]) + "\n"


def _best(values: pd.Series, column: Column) -> str | None:
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    if numbers.empty:
        return None
    best = numbers.max() if column.higher_is_better else numbers.min()
    return f"{float(best):.{column.digits}f}"


def _interval(row, column: Column, fmt: str, style: str) -> str:
    if column.low is None or column.high is None:
        return ""
    low, high = row.get(column.low), row.get(column.high)
    if low is None or high is None or any(isinstance(v, float) and math.isnan(v) for v in (low, high)):
        return ""
    low, high = f"{float(low):.{column.digits}f}", f"{float(high):.{column.digits}f}"
    if style == "brackets":
        return f" [{low}, {high}]"
    return f"$_{{{low}}}^{{{high}}}$" if fmt == "latex" else f"<sub>{low}</sub><sup>{high}</sup>"


def _latex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _markdown(text: str) -> str:
    return "".join("\\" + ch if ch in "\\|*_`[]<>#" else ch for ch in text).replace("\n", " ")


# --- the two pages' tables -----------------------------------------------------------------------------------------
def metrics_table(rows: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, list[Column]]:
    """The Metrics page's rows of one metric and subset (one per run) as models x dataset/split (and ablation, when
    there are several), each cell a value with its interval."""
    frame = rows.copy()
    frame["where"] = frame.dataset + "/" + frame.split + (
        " (" + frame.ablation + ")" if frame.ablation.nunique() > 1 else "")
    places = list(dict.fromkeys(frame.sort_values(["dataset", "split", "ablation"])["where"]))
    wide = frame.pivot_table(index="model", columns="where", values=["value", "ci_low", "ci_high"], aggfunc="first")
    out = pd.DataFrame({"model": wide.index})
    columns = []
    for k, place in enumerate(places):
        for part in ("value", "ci_low", "ci_high"):
            out[f"{part}{k}"] = wide[(part, place)].to_numpy() if (part, place) in wide else float("nan")
        columns.append(Column(place, f"value{k}", f"ci_low{k}", f"ci_high{k}",
                              higher_is_better=not lower_is_better(metric)))
    return out, columns


def leaderboard_columns(table: pd.DataFrame) -> list[Column]:
    """The Leaderboard's side-by-side table: the arena rating and human score with their intervals, and the automatic
    accuracies."""
    columns = []
    if "arena rating" in table:
        columns.append(Column("arena rating", "arena rating", "arena ci_low", "arena ci_high", digits=0))
    if "human score" in table:
        columns.append(Column("human score", "human score", "human ci_low", "human ci_high", digits=2))
    columns += [Column(c, c, digits=3) for c in table.columns if c.startswith("accuracy")]
    return columns
