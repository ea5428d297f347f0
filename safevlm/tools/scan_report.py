"""scan.html: the report of `safevlm scan` (counts per type and level, the flagged share,
the top items with thumbnails and bars). Reads CSV rows; classifies nothing."""

from __future__ import annotations

import hashlib
import html
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from safevlm.policy import Thresholds
from safevlm.taxonomy import Taxonomy

HTML_NAME, THUMBS_DIR = "scan.html", "thumbs"
THUMB_SIDE = 128



def write_report(
    rows: Sequence[dict],
    out: Path,
    taxonomy: Taxonomy,
    top: int = 50,
    thresholds: Thresholds | None = None,
) -> Path:
    """scan.html: counts per type and level, the flagged share, and the `top` items by
    1 - P(safe) with thumbnails (small JPEGs in OUT/thumbs/) and their type bars."""
    ok = [r for r in rows if not r["error"]]
    failed = [r for r in rows if r["error"]]
    flagged = sum(r["flagged"] == "1" for r in ok)
    labels = dict(zip(taxonomy.types, taxonomy.type_labels, strict=True))
    safe_col = f"p_{taxonomy.safe_type}"
    ranked = sorted(ok, key=lambda r: float(r[safe_col]))[:top]
    by_type = Counter(r["type"] for r in ok)
    by_level = Counter(int(r["level"]) for r in ok)
    by_action = Counter(r["decision"] for r in ok)
    e = _esc
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>SafeVLM scan</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>SafeVLM scan</h1>",
        f"<p>{len(rows)} items: {len(ok)} classified, {len(failed)} unreadable. "
        f"<b>{flagged}</b> flagged ({_share(flagged, len(ok))}): "
        + ", ".join(f"{e(a)} {by_action.get(a, 0)}" for a in ("allow", "caution", "refuse"))
        + ".</p>",
    ]
    if thresholds is not None:
        parts.append(f"<p class='muted'>thresholds: {e(json.dumps(thresholds.to_dict()))}</p>")
    parts += [
        "<div class='cols'>",
        _count_table(
            "Decision type", [(labels[t], by_type.get(t, 0)) for t in taxonomy.types], len(ok)
        ),
        _count_table(
            "Decision level",
            [(taxonomy.level_labels[k], by_level.get(k, 0)) for k in range(len(taxonomy.levels))],
            len(ok),
        ),
        "</div>",
        f"<h2>Top {len(ranked)} by 1 &minus; P({e(labels[taxonomy.safe_type])})</h2>",
        "<table class='top'><tr><th>#</th><th>image</th><th>risk</th><th>decision</th>"
        "<th>item</th><th>P(type)</th></tr>",
    ]
    for rank, row in enumerate(ranked, start=1):
        thumb = _thumbnail(row, out)
        picture = (
            f"<img src='{e(thumb)}' alt=''>" if thumb else "<span class='muted'>no preview</span>"
        )
        risk = 1.0 - float(row[safe_col])
        decision = row["decision"] + (
            f" · {labels.get(row['type'], row['type'])} · level {row['level']}"
            if row["flagged"] == "1"
            else ""
        )
        read = (
            f"<div class='muted'>read: {e(_short(row['reader_text'], 200))}</div>"
            if row["reader_text"]
            else ""
        )
        bars = "".join(
            f"<div class='prob'><span>{e(labels[t])}</span>{_bar(float(row[f'p_{t}']))}"
            f"<span>{float(row[f'p_{t}']):.2f}</span></div>"
            for t in taxonomy.types
        )
        parts.append(
            f"<tr><td>{rank}</td><td>{picture}</td><td>{risk:.3f}</td>"
            f"<td class='{e(row['decision'])}'>{e(decision)}</td>"
            f"<td><div class='key'>{e(_short(row['key'], 120))}</div>"
            f"<div>{e(_short(row['prompt'], 300))}</div>{read}</td><td>{bars}</td></tr>"
        )
    parts.append("</table>")
    if failed:
        parts += [
            f"<h2>Unreadable ({len(failed)})</h2><ul>",
            *(
                f"<li><span class='key'>{e(_short(r['key'], 120))}</span>: {e(_short(r['error'], 300))}</li>"
                for r in failed[:100]
            ),
            "</ul>"
            + (
                f"<p class='muted'>... and {len(failed) - 100} more in scan.csv</p>"
                if len(failed) > 100
                else ""
            ),
        ]
    parts.append("</body></html>\n")
    path = out / HTML_NAME
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


_CSS = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 1.5em 1em 0}td,th{padding:4px 8px;border-bottom:1px solid #ddd;
text-align:left;vertical-align:top}.cols{display:flex;flex-wrap:wrap}.muted{color:#777;font-size:12px}
.key{font-family:monospace;font-size:12px;color:#555;word-break:break-all}.top td:nth-child(5){max-width:28em}
.bar{display:inline-block;width:90px;height:9px;background:#eee;margin:0 6px;vertical-align:middle}
.bar span{display:block;height:100%;background:#5b5fc7}.prob{white-space:nowrap;font-size:12px}
.prob span:first-child{display:inline-block;width:7.5em}img{max-width:128px;max-height:128px}
.allow{color:#2e7d32}.caution{color:#b26a00}.refuse{color:#c62828;font-weight:bold}"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _share(n: int, total: int) -> str:
    return f"{n / total:.1%}" if total else "n/a"


def _bar(p: float) -> str:
    return (
        f"<span class='bar'><span style='width:{max(0.0, min(p, 1.0)) * 100:.1f}%'></span></span>"
    )


def _count_table(title: str, counts: list[tuple[str, int]], total: int) -> str:
    body = "".join(
        f"<tr><td>{_esc(name)}</td><td>{n}</td><td>{_bar(n / total if total else 0)}"
        f"{_share(n, total)}</td></tr>"
        for name, n in counts
    )
    return f"<table><tr><th>{_esc(title)}</th><th>n</th><th>share</th></tr>{body}</table>"


def _thumbnail(row: dict, out: Path) -> str | None:
    """OUT/thumbs/<hash of the key>.jpg (made once); its path relative to OUT, or None."""
    from safevlm.images import ImageError, load_image

    if not row["image"]:
        return None
    name = hashlib.sha1(row["key"].encode("utf-8")).hexdigest()[:20] + ".jpg"
    path = out / THUMBS_DIR / name
    if not path.is_file():
        try:
            picture = load_image(row["image"]).image.copy()
        except (ImageError, OSError):
            return None
        picture.thumbnail((THUMB_SIDE, THUMB_SIDE))
        path.parent.mkdir(exist_ok=True)
        picture.save(path, "JPEG", quality=80)
    return f"{THUMBS_DIR}/{name}"
