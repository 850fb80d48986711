"""Plotly helpers for the book.

When the book is built (``INTERP_BOOK_PLOTLY=book``, set by the Sphinx extension) figures are
rendered as HTML that calls the page's single copy of plotly.js from the site's static files; in
Jupyter or Colab plotly's own default renderer is used.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import torch
from plotly.io._base_renderers import MimetypeRenderer


class _BookRenderer(MimetypeRenderer):
    """text/html without plotly.js: the page loads /_static/plotly.min.js once, deferred (so
    the 4.8 MB script does not hold up the first paint), and each figure draws itself once
    plotly is there."""

    def to_mimebundle(self, fig_dict):
        html = pio.to_html(fig_dict, include_plotlyjs=False, full_html=False,
                           config={"displaylogo": False, "responsive": True})
        return {"text/html": _draw_when_plotly_is_loaded(html)}


def _draw_when_plotly_is_loaded(html: str) -> str:
    """Wrap the figure's inline script so it runs after the deferred plotly.js: at once if
    ``window.Plotly`` exists, else on DOMContentLoaded (deferred scripts run before it)."""
    head, sep, rest = html.partition("<script>")
    body, sep2, tail = rest.partition("</script>")
    if not (sep and sep2) or "<script>" in tail:
        raise RuntimeError("unexpected plotly HTML: expected exactly one inline <script>")
    wrapped = ("(function () { function draw() {" + body + "} if (window.Plotly) { draw(); } "
               'else { document.addEventListener("DOMContentLoaded", draw); } })();')
    return head + "<script>" + wrapped + "</script>" + tail


if os.environ.get("INTERP_BOOK_PLOTLY") == "book":
    pio.renderers["interpbook"] = _BookRenderer()
    pio.renderers.default = "interpbook"

pio.templates.default = "plotly_white"


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


def imshow(values, *, title: str = "", x: Sequence[str] | None = None, y: Sequence[str] | None = None,
           xlabel: str = "", ylabel: str = "", zmid: float | None = 0.0, colorscale: str = "RdBu",
           height: int = 400, width: int | None = None, zmin=None, zmax=None) -> go.Figure:
    """A heatmap of a 2D tensor (e.g. [layer, head] scores). Diverging colours centred on zmid."""
    z = _np(values)
    if z.ndim != 2:
        raise ValueError(f"imshow expects a 2D tensor, got shape {tuple(z.shape)}")
    fig = go.Figure(go.Heatmap(z=z, x=list(x) if x is not None else None, y=list(y) if y is not None else None,
                               colorscale=colorscale, zmid=zmid if zmin is None else None, zmin=zmin, zmax=zmax,
                               reversescale=colorscale == "RdBu"))
    fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title=ylabel, height=height, width=width,
                      yaxis_autorange="reversed", margin=dict(l=60, r=20, t=50, b=50))
    return fig


def line(values, *, title: str = "", x=None, xlabel: str = "", ylabel: str = "",
         labels: Sequence[str] | None = None, height: int = 350, hover: Sequence[str] | None = None) -> go.Figure:
    """One or more lines: ``values`` is 1D, or 2D with one row per line."""
    y = _np(values)
    rows = y[None] if y.ndim == 1 else y
    fig = go.Figure()
    for i, row in enumerate(rows):
        fig.add_trace(go.Scatter(x=x if x is not None else np.arange(len(row)), y=row, mode="lines",
                                 name=labels[i] if labels else None, text=hover,
                                 hovertemplate=("%{text}<br>" if hover is not None else "") + "%{y:.3f}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title=ylabel, height=height,
                      showlegend=bool(labels), margin=dict(l=60, r=20, t=50, b=50))
    return fig


def attention_patterns(pattern, str_tokens: Sequence[str], *, title: str = "Attention patterns",
                       head_names: Sequence[str] | None = None, height: int = 480) -> go.Figure:
    """Interactive attention patterns: ``pattern`` is [head, query, key] for one sequence; a
    dropdown picks the head. Hover shows which token attends to which."""
    p = _np(pattern)
    if p.ndim != 3 or p.shape[1] != p.shape[2] or p.shape[1] != len(str_tokens):
        raise ValueError(
            f"attention_patterns expects [head, query, key] with query = key = {len(str_tokens)} "
            f"(the number of tokens), got shape {tuple(p.shape)}"
        )
    n_heads = p.shape[0]
    names = list(head_names) if head_names is not None else [f"head {h}" for h in range(n_heads)]
    labels = [f"{i}: {t!r}" for i, t in enumerate(str_tokens)]
    fig = go.Figure()
    for h in range(n_heads):
        fig.add_trace(go.Heatmap(z=p[h], x=labels, y=labels, colorscale="Blues", zmin=0, zmax=1,
                                 visible=h == 0, name=names[h],
                                 hovertemplate="query %{y}<br>key %{x}<br>attention %{z:.2f}<extra></extra>"))
    buttons = [dict(label=names[h], method="update",
                    args=[{"visible": [i == h for i in range(n_heads)]}, {"title.text": f"{title}: {names[h]}"}])
               for h in range(n_heads)]
    fig.update_layout(title=f"{title}: {names[0]}", height=height, yaxis_autorange="reversed",
                      xaxis=dict(showticklabels=len(labels) <= 40, tickangle=-60),
                      yaxis=dict(showticklabels=len(labels) <= 40),
                      updatemenus=[dict(buttons=buttons, direction="down", x=1.0, xanchor="right", y=1.15)],
                      margin=dict(l=80, r=20, t=70, b=80))
    return fig


def circuit_diagram(nodes: Sequence[dict], edges: Sequence[tuple[str, str, float]], *, title: str = "",
                    value_format: str = "{:.2f}", height: int = 420, width: int | None = None,
                    x_labels: dict[float, str] | None = None) -> go.Figure:
    """A circuit as a layered graph. ``nodes`` are dicts with ``name`` (a unique id, e.g. "0.6"),
    ``label`` (the text shown), ``role`` (one colour and legend entry per role) and ``layer`` (the
    x position; nodes of one layer are spread vertically in the order given). ``edges`` are
    ``(source name, target name, weight)``: an arrow whose width and opacity grow with
    ``|weight|``, labelled with ``value_format.format(weight)`` half a layer before its target.
    ``x_labels`` names x positions (default: the layers)."""
    by_name = {n["name"]: n for n in nodes}
    if len(by_name) != len(nodes):
        raise ValueError("circuit_diagram: node names must be unique")
    for src, dst, _ in edges:
        for end in (src, dst):
            if end not in by_name:
                raise ValueError(f"edge {src!r} -> {dst!r} names {end!r}, which is not a node")
    layers = sorted({n["layer"] for n in nodes})
    pos: dict[str, tuple[float, float]] = {}
    for layer in layers:
        column = [n for n in nodes if n["layer"] == layer]
        for i, n in enumerate(column):
            pos[n["name"]] = (float(layer), (len(column) - 1) / 2 - i)
    fig = go.Figure()
    top = max((abs(w) for _, _, w in edges), default=1.0) or 1.0
    for src, dst, w in edges:
        (x0, y0), (x1, y1) = pos[src], pos[dst]
        strength = abs(w) / top
        fig.add_annotation(x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y", text="",
                           showarrow=True, arrowhead=2, arrowsize=max(0.5, 1.2 - 0.1 * (1 + 6 * strength)),
                           arrowwidth=1 + 6 * strength, arrowcolor="rgb(90, 90, 90)",
                           opacity=0.3 + 0.7 * strength, standoff=15, startstandoff=13)
        # The label sits half a layer before the target (or mid-way within a column), where
        # edges into different nodes are apart.
        t = 0.5 if x1 == x0 else max(0.5, 1 - 0.5 / abs(x1 - x0))
        fig.add_annotation(x=x0 + t * (x1 - x0), y=y0 + t * (y1 - y0), xref="x", yref="y",
                           text=value_format.format(w), showarrow=False, font=dict(size=11),
                           bgcolor="rgba(255, 255, 255, 0.85)")
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f"]
    roles = list(dict.fromkeys(n["role"] for n in nodes))
    for i, role in enumerate(roles):
        members = [n for n in nodes if n["role"] == role]
        fig.add_trace(go.Scatter(
            x=[pos[n["name"]][0] for n in members], y=[pos[n["name"]][1] for n in members],
            mode="markers+text", name=role, text=[n["label"] for n in members],
            textposition=["middle right" if n["layer"] == layers[-1] else "top center" for n in members],
            marker=dict(size=22, color=palette[i % len(palette)], line=dict(width=1, color="white")),
            hovertemplate="%{text}<extra>" + role + "</extra>"))
    ys = [y for _, y in pos.values()] or [0.0]
    ticks = x_labels if x_labels is not None else {layer: str(layer) for layer in layers}
    fig.update_layout(
        title=title, height=height, width=width, margin=dict(l=20, r=20, t=50, b=40),
        legend=dict(orientation="h", y=-0.08),
        xaxis=dict(tickvals=list(ticks), ticktext=list(ticks.values()), range=[min(layers) - 0.4, max(layers) + 0.6],
                   zeroline=False, showgrid=False),
        yaxis=dict(visible=False, range=[min(ys) - 0.8, max(ys) + 0.9]))
    return fig


def token_highlights(rows: Sequence[Sequence[str]], values, *, title: str = "",
                     labels: Sequence[str] | None = None, vmax: float | None = None):
    """Text with each token shaded by its value (e.g. an SAE latent's activation), one row per
    snippet; hovering a token shows its value. ``values`` is ``[rows, tokens]`` (ragged lists
    are fine). Plain HTML (no JavaScript), so it renders in the book, Jupyter and Colab.
    Negative values are shaded blue, positive ones orange."""
    import html as _html

    from IPython.display import HTML

    vals = [_np(v).astype(float).ravel() for v in values]
    if len(vals) != len(rows) or any(len(v) != len(r) for v, r in zip(vals, rows)):
        raise ValueError("token_highlights: values must have one number per token of each row "
                         f"(got {len(rows)} rows of tokens and {len(vals)} rows of values)")
    top = vmax if vmax is not None else max((float(np.abs(v).max()) for v in vals if len(v)), default=1.0) or 1.0
    parts = [f"<div class='interpbook-tokens'><b>{_html.escape(title)}</b>" if title else "<div class='interpbook-tokens'>"]
    for i, (toks, v) in enumerate(zip(rows, vals)):
        label = f"<span style='color:#666;font-family:sans-serif'>{_html.escape(labels[i])} </span>" if labels else ""
        spans = []
        for t, x in zip(toks, v):
            a = min(1.0, abs(x) / top)
            rgb = "255,140,0" if x >= 0 else "30,110,230"
            text = _html.escape(t).replace("\n", "↵")
            spans.append(f"<span title='{x:.3g}' style='background:rgba({rgb},{a:.2f});"
                         f"border-radius:2px'>{text}</span>")
        parts.append(f"<div style='font-family:monospace;white-space:pre-wrap;margin:2px 0;"
                     f"line-height:1.6'>{label}{''.join(spans)}</div>")
    parts.append("</div>")
    return HTML("".join(parts))


def othello_board(values=None, pieces=None, *, marks=None, titles: Sequence[str] | None = None,
                  title: str = "", colorscale: str = "Blues", zmin=None, zmax=None, zmid=None,
                  value_format: str = ".2f", height: int = 330) -> go.Figure:
    """Othello boards as heatmaps, one panel per row of ``values`` (``[36]`` or ``[panels, 36]``,
    squares numbered row by row; NaN leaves a square blank), e.g. a probe's accuracy per square;
    ``[32]`` / ``[panels, 32]`` values (one per move token, e.g. move probabilities) and marks are
    laid out on the board with :func:`interpbook.datasets.othello.on_board`. ``pieces`` (same shape; +1 black, -1 white, 0 empty, the engine's
    convention) draws discs; ``marks`` (bool, same shape) puts a cross on squares, e.g. the legal
    moves. Rows are numbered 1.. from the top, columns lettered a.. from the left."""
    from plotly.subplots import make_subplots

    from interpbook.datasets.othello import N_MOVES, SIZE, on_board, square_name

    n_sq = SIZE * SIZE
    def panels(x, what: str):
        if x is None:
            return None
        a = _np(x).astype(float)
        if a.shape[-1] == N_MOVES:  # one value per move token: lay it out on the board
            a = on_board(a, fill=np.nan if what == "values" else 0.0)
        if a.shape[-1] != n_sq or a.ndim not in (1, 2):
            raise ValueError(f"othello_board: {what} must be [{n_sq}] or [panels, {n_sq}] (squares in "
                             f"row order) or [{N_MOVES}] / [panels, {N_MOVES}] (move tokens), got shape "
                             f"{tuple(a.shape)}")
        return a.reshape(-1, n_sq)
    vals, disc, cross = panels(values, "values"), panels(pieces, "pieces"), panels(marks, "marks")
    k = max(len(a) for a in (vals, disc, cross) if a is not None) if any(
        a is not None for a in (vals, disc, cross)) else 1
    if titles is not None and len(titles) != k:
        raise ValueError(f"othello_board: {k} panels but {len(titles)} titles")
    cols, rows = [c for c in "abcdefgh"[:SIZE]], [str(r + 1) for r in range(SIZE)]
    names = np.array([square_name(s) for s in range(n_sq)]).reshape(SIZE, SIZE)
    fig = make_subplots(rows=1, cols=k, subplot_titles=list(titles) if titles else None,
                        horizontal_spacing=0.04 if k > 1 else 0.0)
    lo = np.nanmin(vals) if vals is not None and zmin is None else zmin
    hi = np.nanmax(vals) if vals is not None and zmax is None else zmax
    for i in range(k):
        z = vals[min(i, len(vals) - 1)].reshape(SIZE, SIZE) if vals is not None else np.zeros((SIZE, SIZE))
        fig.add_trace(go.Heatmap(
            z=z, x=cols, y=rows, colorscale=colorscale if vals is not None else [[0, "#2e7d4f"], [1, "#2e7d4f"]],
            zmin=lo, zmax=hi, zmid=zmid, showscale=vals is not None and i == k - 1, xgap=2, ygap=2,
            customdata=names, hovertemplate="%{customdata}: %{z:" + value_format + "}<extra></extra>"), 1, i + 1)
        if disc is not None:
            d = disc[min(i, len(disc) - 1)]
            for colour, v in (("black", 1), ("white", -1)):
                sq = np.flatnonzero(d == v)
                fig.add_trace(go.Scatter(x=[cols[s % SIZE] for s in sq], y=[rows[s // SIZE] for s in sq],
                                         mode="markers", hoverinfo="skip", showlegend=False,
                                         marker=dict(size=22, color=colour, line=dict(width=1, color="grey"))),
                              1, i + 1)
        if cross is not None:
            sq = np.flatnonzero(cross[min(i, len(cross) - 1)] > 0)
            fig.add_trace(go.Scatter(x=[cols[s % SIZE] for s in sq], y=[rows[s // SIZE] for s in sq],
                                     mode="markers", hoverinfo="skip", showlegend=False,
                                     marker=dict(size=12, symbol="x-thin", line=dict(width=2, color="crimson"))),
                          1, i + 1)
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{i + 1 if i else ''}", constrain="domain",
                         row=1, col=i + 1)
        fig.update_xaxes(constrain="domain", row=1, col=i + 1)
    fig.update_annotations(font_size=11)  # the panel titles: several boards share one row
    fig.update_layout(title=title, height=height, margin=dict(l=20, r=20, t=70 if titles else 40, b=30),
                      plot_bgcolor="white")
    return fig
