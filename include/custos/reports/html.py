"""Self-contained bilingual HTML pages (styles inline, every value escaped)."""

from __future__ import annotations

from html import escape

STYLE = """
body{font-family:system-ui,-apple-system,"Noto Sans CJK SC","PingFang SC",sans-serif;
margin:2rem;color:#1b1f24;max-width:1200px}
h1{font-size:1.4rem;margin-bottom:.2rem}h2{font-size:1.1rem;margin-top:2rem}
.zh{color:#57606a;font-weight:normal}.meta{color:#57606a;font-size:.9rem}
table{border-collapse:collapse;margin-top:.8rem;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.35rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}.pass{background:#dafbe1;color:#116329;text-align:center}
.fail{background:#ffebe9;color:#a40e26;font-weight:600;text-align:center}
.na{color:#8c959f;text-align:center}td.control{min-width:22rem}
.badge{display:inline-block;padding:.1rem .5rem;
border-radius:1rem;font-weight:600}.badge.pass{border:1px solid #116329}
.badge.fail{border:1px solid #a40e26}footer{margin-top:2rem;color:#57606a;font-size:.8rem}
"""


def bilingual(en: str, zh: str) -> str:
    return f'{escape(en)} <span class="zh">{escape(zh)}</span>'


def page(title_en: str, title_zh: str, body: str, footer: str = "") -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title_en)} · {escape(title_zh)}</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>{bilingual(title_en, title_zh)}</h1>{body}"
        f"<footer>{escape(footer)}</footer></body></html>\n"
    )


def table(header: list[str], rows: list[list[str]]) -> str:
    """All cells are HTML already: build them with escape(), bilingual() or cell()."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(rows_cell for rows_cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def cell(content: str, css: str = "", raw: bool = False) -> str:
    inner = content if raw else escape(content)
    return f'<td class="{css}">{inner}</td>' if css else f"<td>{inner}</td>"
