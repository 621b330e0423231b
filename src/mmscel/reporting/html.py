"""Markup of the report: figures as embedded PNG, tables, notes, and the page around its sections.

The page needs nothing from the network: the figures are data URIs and the
style sheet is inline; it runs no script.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field

import pandas as pd

DPI = 100

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 0; color: #1d1d1f;
       background: #f6f7f9; }
header { background: #0d47a1; color: white; padding: 18px 32px; }
header h1 { margin: 0 0 4px 0; font-size: 24px; }
header p { margin: 0; opacity: 0.85; font-size: 13px; }
nav { padding: 8px 32px; background: white; border-bottom: 1px solid #dde; font-size: 13px; }
nav a { margin-right: 14px; color: #0d47a1; text-decoration: none; }
main { max-width: 1040px; margin: 0 auto; padding: 8px 24px 40px 24px; }
section { background: white; border: 1px solid #e3e5ea; border-radius: 8px; padding: 8px 20px 16px 20px;
          margin-top: 18px; }
h2 { color: #0d47a1; font-size: 19px; margin: 12px 0 6px 0; }
h3 { font-size: 15px; margin: 14px 0 4px 0; }
p.lead { color: #555; font-size: 13px; margin: 2px 0 8px 0; }
p.note { color: #8a5300; background: #fff8e1; border-left: 3px solid #f9a825; padding: 4px 10px; font-size: 13px; }
img { max-width: 100%; height: auto; display: block; margin: 6px 0; }
table { border-collapse: collapse; font-size: 12.5px; margin: 6px 0 10px 0; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e6e6e6; text-align: right; }
th { background: #f0f3f8; }
td.text, th.text { text-align: left; }
"""


@dataclass
class Section:
    """One section of the page: a heading, a lead line, and its blocks of markup (figures, tables, notes)."""

    key: str
    title: str
    lead: str = ""
    blocks: list[str] = field(default_factory=list)

    def add(self, block: str) -> None:
        """Append a block of markup."""
        self.blocks.append(block)

    def markup(self) -> str:
        """The section as HTML."""
        lead = f'<p class="lead">{escape(self.lead)}</p>' if self.lead else ""
        body = "\n".join(self.blocks)
        return f'<section id="{self.key}">\n<h2>{escape(self.title)}</h2>{lead}\n{body}\n</section>'


def escape(text) -> str:
    """``text`` as HTML text."""
    return html.escape(str(text))


def heading(text: str) -> str:
    """A sub-heading."""
    return f"<h3>{escape(text)}</h3>"


def note(text: str) -> str:
    """A one-line note: a piece of the report that is left out, and why."""
    return f'<p class="note">{escape(text)}</p>'


def figure(fig, alt: str) -> str:
    """A matplotlib figure as an embedded PNG image (the figure is closed afterwards)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    fig.clear()
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{encoded}">'


def table(frame: pd.DataFrame, digits: int = 4, formats: dict[str, str] | None = None) -> str:
    """A table of ``frame`` (index dropped); text columns left-aligned, numbers right-aligned.

    Parameters
    ----------
    frame
        The rows to show.
    digits
        Decimals of float values.
    formats
        Column -> format string (``"{:.0%}"``) for columns shown otherwise; missing values stay empty.

    Returns
    -------
    str
    """
    formats = formats or {}
    text_columns = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    head = "".join(f'<th class="{_align(c, text_columns)}">{escape(c)}</th>' for c in frame.columns)
    rows = []
    for values in frame.itertuples(index=False):
        cells = "".join(
            f'<td class="{_align(c, text_columns)}">{escape(_format(v, digits, formats.get(c)))}</td>'
            for c, v in zip(frame.columns, values)
        )
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _align(column, text_columns) -> str:
    return "text" if column in text_columns else "num"


def _format(value, digits: int, spec: str | None = None) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if spec is not None:
        return spec.format(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def page(title: str, facts: list[str], sections: list[Section]) -> str:
    """The whole page: a header with ``facts``, a table of contents, and the sections.

    Parameters
    ----------
    title
        The page's title.
    facts
        Short lines shown under the title (data folder, store, time).
    sections
        The sections, in order.

    Returns
    -------
    str
        A complete HTML document.
    """
    links = " ".join(f'<a href="#{s.key}">{escape(s.title)}</a>' for s in sections)
    body = "\n".join(s.markup() for s in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<header><h1>{escape(title)}</h1><p>{' · '.join(escape(f) for f in facts)}</p></header>\n"
        f"<nav>{links}</nav>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
