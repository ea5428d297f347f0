"""Vendor the public request datasets into data/public/<source>/ (run once, by hand).

Reads each source from a bare git snapshot of its GitHub repository (the project's `fetch`
tool puts them under /work/.mirror/<owner>+<name>/repo), keeps only the *requests* and
their category labels (never answers, targets, contexts or model outputs), and writes
`requests.jsonl` ({"id", "text", "category", "subcategory"}) and `manifest.json` (repo,
commit, path, upstream blob sha256, license, rows, sha256 of the vendored file, what was
kept). Each source's manifest also says where it comes from and how to read it (repo,
path, zip `member`, `extractor` below, license, kind, note): to add a source, write those
fields into data/public/<name>/manifest.json and run this with its name. Training reads the
vendored files through `safevlm.data.public`; nothing fetches at training time.

    python -m safevlm.data.vendor --mirrors /work/.mirror
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import logging
import subprocess
import zipfile
from pathlib import Path

from safevlm.data.public import PUBLIC_DIR

log = logging.getLogger(__name__)

# Files never opened here: answers, API keys, and every evaluation benchmark the project
# must not train on (XSTest / TrustLLM's exaggerated_safety.json among them).
FORBIDDEN = ("api_keys/", "exaggerated_safety.json")


def git_show(mirror: Path, repo: str, path: str) -> tuple[bytes, str]:
    if any(f in path for f in FORBIDDEN):
        raise SystemExit(f"refusing to read {repo}:{path}")
    git = mirror / repo.replace("/", "+") / "repo"
    data = subprocess.run(["git", f"--git-dir={git}", "show", f"HEAD:{path}"],
                          capture_output=True, check=True).stdout
    commit = subprocess.run(["git", f"--git-dir={git}", "rev-parse", "HEAD"],
                            capture_output=True, check=True, text=True).stdout.strip()
    return data, commit


def rows_csv(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


# Each extractor: upstream bytes (or, with a manifest "member", that zip member's JSON) ->
# [(text, category, subcategory)]. A manifest names its extractor.
EXTRACTORS = {}


def extractor(fn):
    EXTRACTORS[fn.__name__] = fn
    return fn


@extractor
def advbench(data):
    return [(r["goal"], "", "") for r in rows_csv(data)]


@extractor
def jailbreakbench(data):
    return [(r["Goal"], r["Category"], r["Behavior"]) for r in rows_csv(data)]


@extractor
def strongreject(data):
    return [(r["forbidden_prompt"], r["category"], r["source"]) for r in rows_csv(data)]


@extractor
def harmbench(data):
    return [(r["Behavior"], r["SemanticCategory"], r["FunctionalCategory"]) for r in rows_csv(data)]


@extractor
def alpaca(data):
    return [(r["instruction"], "", "") for r in json.loads(data)]


@extractor
def catqa(data):
    return [(q, cat, sub.rstrip(":")) for cat, subs in json.loads(data).items()
            for sub, qs in subs.items() for q in qs]


@extractor
def do_not_answer(data):
    return [(r["question"], r["risk_area"], r["types_of_harm"]) for r in rows_csv(data)]


@extractor
def stl(data):  # safety-tuned-llamas: {"instructions": [...], "inputs": [...]}
    d = json.loads(data)
    inputs = d.get("inputs") or []
    return [(t, "", "") for i, t in enumerate(d["instructions"]) if not (i < len(inputs) and inputs[i])]


@extractor
def truthfulqa(data):
    return [(r["Question"], r["Category"], r["Type"]) for r in rows_csv(data)]


@extractor
def misuse(rows):  # TrustLLM safety/misuse.json
    out = []
    for r in rows:
        label = r.get("label") or {}
        if isinstance(label, list):  # misuse_add: ["misleading_content", ...]
            category = ",".join(label)
        else:
            category = r.get("type") or label.get("first_class", "")
        out.append((r["prompt"], category, r.get("source", "")))
    return out


@extractor
def privacy(rows):  # TrustLLM privacy awareness queries
    seen, out = set(), []
    for r in rows:  # "normal" and "aug" share the third party's question
        if r["question"] not in seen:
            seen.add(r["question"])
            out.append((r["question"], r["privacy_information"], ""))
    return out


@extractor
def prompts(rows):  # TrustLLM files of {"prompt": ...}
    return [(r["prompt"], "", "") for r in rows]


def extract(data: bytes, info: dict) -> list[tuple]:
    fn = EXTRACTORS[info["extractor"]]
    if "member" in info:  # a JSON file inside an upstream zip
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return fn(json.loads(z.read(info["member"])))
    return fn(data)


def vendored() -> list[str]:
    return sorted(p.parent.name for p in PUBLIC_DIR.glob("*/manifest.json") if "extractor" in json.loads(p.read_text()))


def vendor(mirror: Path, names: list[str]) -> None:
    """Re-vendor `names` from the snapshots: each manifest says what to read (repo, path,
    member, extractor) and under which terms (license, kind, note); the rest is rewritten."""
    for name in names:
        out = PUBLIC_DIR / name
        info = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        repo = info["repo"].removeprefix("https://github.com/")
        data, commit = git_show(mirror, repo, info["path"])
        rows, seen = [], set()
        for text, category, sub in extract(data, info):
            text = " ".join(str(text).split())
            if text and text not in seen:
                seen.add(text)
                rows.append({"id": f"{name}-{len(rows):05d}", "text": text,
                             "category": category or "", "subcategory": sub or ""})
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
        (out / "requests.jsonl").write_bytes(body)
        info.update({"source": name, "commit": commit, "upstream_sha256": hashlib.sha256(data).hexdigest(),
                     "non_commercial": "NC" in info["license"], "rows": len(rows),
                     "sha256": hashlib.sha256(body).hexdigest(),
                     "kept": "request text and category labels only (exact duplicates within the file dropped)"})
        (out / "manifest.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        log.info("%s: %d rows", name, len(rows))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    p.add_argument("sources", nargs="*", default=vendored())
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    vendor(args.mirrors, args.sources)
