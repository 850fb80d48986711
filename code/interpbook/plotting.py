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
