"""Plotly figures for the dashboard, built from store frames (pure functions: no streamlit, no torch)."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

ABLATION_ORDER = ["none", "swap-images", "blank-image", "question-only", "consistency", "expert-prompt", "zero-shot",
                  "ood", "probe"]


MIN_N_FOR_INTERVAL = 10  # as medvqa.ratings: no whisker drawn from fewer observations


def _with_errors(frame: pd.DataFrame, value: str = "value", low: str = "ci_low", high: str = "ci_high",
                 count: str = "n"):
    out = frame.assign(err_plus=frame[high] - frame[value], err_minus=frame[value] - frame[low])
    if count in out:
        small = out[count] < MIN_N_FOR_INTERVAL
        out.loc[small, ["err_plus", "err_minus"]] = float("nan")
    return out


def _empty(message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(xaxis_visible=False, yaxis_visible=False, height=240)
    return fig


def metric_bars(metrics: pd.DataFrame, metric: str, subset: str = "all",
                baselines: dict[str, float] | None = None) -> go.Figure:
    """Model x dataset bars of one metric with 95% bootstrap CI error bars (plain runs only), n on each bar, and a
    dashed line per dataset at `baselines` (e.g. the text-only baseline: what a model scores without the image)."""
    rows = metrics[(metrics.metric == metric) & (metrics.subset == subset) & (metrics.ablation == "none")]
    if rows.empty:
        return _empty(f"no {metric} on '{subset}' in the store yet")
    fig = px.bar(_with_errors(rows), x="model", y="value", color="dataset", barmode="group",
                 error_y="err_plus", error_y_minus="err_minus", hover_data=["n", "ci_low", "ci_high"],
                 labels={"value": metric}, text="n")
    # n at the foot of each bar: at its top the whisker drew over it
    fig.update_traces(texttemplate="n=%{text}", textposition="inside", insidetextanchor="start")
    for dataset, value in (baselines or {}).items():
        if dataset in set(rows.dataset):
            fig.add_hline(y=value, line_dash="dash", line_color="grey",
                          annotation_text=f"{dataset} text-only baseline {value:.1%}")
    fig.update_layout(yaxis_range=[0, 1.05] if rows.value.max() <= 1 else None, height=380)
    return fig


def breakdown_bars(metrics: pd.DataFrame, field: str, metric: str) -> go.Figure:
    """One metric per value of a breakdown field (answer_type, question_type, modality, organ), a bar per model."""
    prefix = f"{field}="
    rows = metrics[metrics.subset.str.startswith(prefix) & (metrics.metric == metric) & (metrics.ablation == "none")]
    if rows.empty:
        return _empty(f"no {field} breakdown of {metric} yet")
    rows = rows.assign(**{field: rows.subset.str[len(prefix):]})
    fig = px.bar(_with_errors(rows), x=field, y="value", color="model", barmode="group", error_y="err_plus",
                 error_y_minus="err_minus", hover_data=["dataset", "n"], labels={"value": metric})
    fig.update_layout(height=380)
    return fig


def ablation_deltas(metrics: pd.DataFrame, metric: str, subset: str = "all") -> go.Figure:
    """Each ablation's value minus the plain run's, per model and dataset: what swapping images, the expert prompt
    or switching the adapter off costs or gains."""
    paired = metrics[(metrics.metric == f"delta_{metric}") & (metrics.subset == subset)]
    if not paired.empty:  # stored by the runner: paired over the same samples, with a bootstrap CI
        other = _with_errors(paired.rename(columns={"value": "delta"}), value="delta")
    else:
        rows = metrics[(metrics.metric == metric) & (metrics.subset == subset)]
        plain = rows[rows.ablation == "none"].set_index(["model", "dataset"]).value
        other = rows[~rows.ablation.isin(["none", "probe", "consistency"])].copy()  # other samples
        other["delta"] = [v - plain.get((m, d), float("nan"))
                          for m, d, v in zip(other.model, other.dataset, other.value)]
        other = other.dropna(subset=["delta"]).assign(err_plus=float("nan"), err_minus=float("nan"))
    if other.empty:
        return _empty("no ablation runs beside a plain run yet (medvqa eval --ablation none,swap-images,blank-image)")
    fig = px.bar(other, x="model", y="delta", color="ablation", barmode="group", hover_data=["dataset", "n"],
                 error_y="err_plus", error_y_minus="err_minus", category_orders={"ablation": ABLATION_ORDER},
                 labels={"delta": f"Δ {metric} vs plain"})
    fig.add_hline(y=0, line_color="grey")
    fig.update_layout(height=380)
    return fig


def loss_curves(logs: pd.DataFrame) -> go.Figure:
    if logs.empty:
        return _empty("no training logs yet (medvqa train)")
    runs = logs.run_name.nunique()
    fig = px.line(logs, x="step", y="loss", color="run_name", line_dash="split", markers=False,
                  hover_data=["learning_rate"], color_discrete_sequence=px.colors.qualitative.Alphabet)  # 26 colours
    # a label per decade only (plotly's default wrote "10, 5, 2, 1, 5, 2, 0.1"); the legend below the plot, in
    # rows, so long run names are not cut at the right edge
    fig.update_layout(height=400 + 22 * ((runs + 2) // 3), yaxis_type="log", yaxis_dtick=1,
                      legend=dict(orientation="h", yanchor="top", y=-0.15, xanchor="left", x=0, title_text=""))
    return fig


def rating_intervals(board: pd.DataFrame, value: str, label: str) -> go.Figure:
    """Horizontal points with 95% CIs, best at the top (arena ratings or human-eval scores)."""
    if board.empty:
        return _empty(f"no {label} yet")
    count = "battles" if "battles" in board else "grades"
    rows = _with_errors(board.sort_values(value), value=value, count=count)
    fig = px.scatter(rows, x=value, y="model", error_x="err_plus", error_x_minus="err_minus",
                     hover_data=["ci_low", "ci_high", count], labels={value: label}, text=count)
    fig.update_traces(textposition="top center", marker_size=10)
    fig.update_layout(height=max(220, 60 * len(rows)))
    return fig


def win_rate_heatmap(matrix: pd.DataFrame) -> go.Figure:
    """Row model's share of wins against the column model: percentages in the cells, blank where two never met."""
    if matrix.empty:
        return _empty("no battles yet")
    text = matrix.map(lambda v: "" if pd.isna(v) else f"{v:.0%}")
    fig = go.Figure(go.Heatmap(z=matrix.values, x=list(matrix.columns), y=list(matrix.index), text=text.values,
                               texttemplate="%{text}", zmin=0, zmax=1, colorscale="RdBu",
                               colorbar={"title": "win rate", "tickformat": ".0%"},
                               hovertemplate="%{y} beat %{x} in %{z:.0%} of their battles<extra></extra>"))
    fig.update_layout(height=max(260, 60 * len(matrix) + 80), xaxis_title="opponent", yaxis_title="model",
                      xaxis_tickangle=-30, yaxis_autorange="reversed")
    return fig


def _colour(i: int) -> str:
    palette = px.colors.qualitative.Plotly
    return palette[i % len(palette)]


def reliability_diagram(bins: pd.DataFrame, labels: dict[int, str], n_bins: int) -> go.Figure:
    """Accuracy against mean confidence in each equal-width score bin, a line per run (store/queries.reliability_bins)
    over the diagonal a calibrated model would follow, and below it how many answers each bin holds."""
    from plotly.subplots import make_subplots

    if bins.empty:
        return _empty("no scored answers for these runs (served engines without log-probabilities give no score)")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.05)
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash", "color": "grey"},
                             name="calibrated", hoverinfo="skip"), row=1, col=1)
    for i, (run_id, rows) in enumerate(bins.groupby("run_id", sort=False)):
        label, colour = labels.get(run_id, str(run_id)), _colour(i)
        fig.add_trace(go.Scatter(x=rows.confidence, y=rows.accuracy, mode="lines+markers", name=label,
                                 legendgroup=label, line={"color": colour}, customdata=rows.n,
                                 hovertemplate="mean confidence %{x:.0%}<br>accuracy %{y:.0%}<br>%{customdata} "
                                               "answers<extra>" + label + "</extra>"), row=1, col=1)
        fig.add_trace(go.Bar(x=(rows["bin"] + 0.5) / n_bins, y=rows.n, name=label, legendgroup=label,
                             showlegend=False, marker_color=colour, width=0.8 / n_bins / max(1, bins.run_id.nunique()),
                             hovertemplate="%{y} answers<extra>" + label + "</extra>"), row=2, col=1)
    fig.update_layout(height=520, barmode="group", legend={"orientation": "h", "y": -0.15})
    fig.update_yaxes(title_text="accuracy", range=[0, 1.02], tickformat=".0%", row=1, col=1)
    fig.update_yaxes(title_text="answers", row=2, col=1)
    fig.update_xaxes(title_text="confidence (the model's score)", range=[0, 1.02], tickformat=".0%", row=2, col=1)
    return fig


def risk_coverage_curves(curves: dict[str, tuple]) -> go.Figure:
    """Error rate among the answers kept against the share kept, most confident first, a line per run: a model whose
    confidence means something starts low and rises; a flat line is confidence that tells nothing."""
    if not curves:
        return _empty("no scored answers for these runs (served engines without log-probabilities give no score)")
    fig = go.Figure()
    for i, (label, (coverage, risk)) in enumerate(curves.items()):
        fig.add_trace(go.Scatter(x=coverage, y=risk, mode="lines", name=label, line={"color": _colour(i)},
                                 hovertemplate="answering the %{x:.0%} most confident: %{y:.1%} wrong<extra>"
                                               + label + "</extra>"))
    fig.update_layout(height=400, xaxis_title="coverage (share of questions answered)",
                      yaxis_title="risk (error rate among those answered)", xaxis_tickformat=".0%",
                      yaxis_tickformat=".0%", xaxis_range=[0, 1.02], legend={"orientation": "h", "y": -0.2})
    return fig
