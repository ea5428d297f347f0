"""Vendor the public request datasets into data/public/<source>/ (run once, by hand).

Reads each source from a bare git snapshot of its GitHub repository (the project's `fetch`
tool puts them under /work/.mirror/<owner>+<name>/repo), keeps only the *requests* and
their category labels (never answers, targets, contexts or model outputs), and writes
`requests.jsonl` ({"id", "text", "category", "subcategory"}) and `manifest.json` (repo,
commit, path, upstream blob sha256, license, rows, sha256 of the vendored file, what was
kept). Training reads the vendored files through `safevlm.data.public`; nothing fetches
at training time.

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


# Each extractor: upstream bytes -> [(text, category, subcategory)]
def advbench(data):
    return [(r["goal"], "", "") for r in rows_csv(data)]


def jailbreakbench(data):
    return [(r["Goal"], r["Category"], r["Behavior"]) for r in rows_csv(data)]


def strongreject(data):
    return [(r["forbidden_prompt"], r["category"], r["source"]) for r in rows_csv(data)]


def harmbench(data):
    return [(r["Behavior"], r["SemanticCategory"], r["FunctionalCategory"]) for r in rows_csv(data)]


def alpaca(data):
    return [(r["instruction"], "", "") for r in json.loads(data)]


def catqa(data):
    return [(q, cat, sub.rstrip(":")) for cat, subs in json.loads(data).items()
            for sub, qs in subs.items() for q in qs]


def do_not_answer(data):
    return [(r["question"], r["risk_area"], r["types_of_harm"]) for r in rows_csv(data)]


def stl(data):  # safety-tuned-llamas: {"instructions": [...], "inputs": [...]}
    d = json.loads(data)
    inputs = d.get("inputs") or []
    return [(t, "", "") for i, t in enumerate(d["instructions"]) if not (i < len(inputs) and inputs[i])]


def truthfulqa(data):
    return [(r["Question"], r["Category"], r["Type"]) for r in rows_csv(data)]


def trustllm(member: str, pick):
    def extract(data):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return pick(json.loads(z.read(member)))
    return extract


def _misuse(rows):
    out = []
    for r in rows:
        label = r.get("label") or {}
        if isinstance(label, list):  # misuse_add: ["misleading_content", ...]
            category = ",".join(label)
        else:
            category = r.get("type") or label.get("first_class", "")
        out.append((r["prompt"], category, r.get("source", "")))
    return out


def _privacy(rows):
    seen, out = set(), []
    for r in rows:  # "normal" and "aug" share the third party's question
        if r["question"] not in seen:
            seen.add(r["question"])
            out.append((r["question"], r["privacy_information"], ""))
    return out


RD, ADV = "andyrdt/refusal_direction", "busycalibrating/AdversariaLLM"
RI, DNA, TL = "declare-lab/red-instruct", "kunishou/do-not-answer-ja", "HowieHwong/TrustLLM"
STL, TQA = "vinid/safety-tuned-llamas", "benedictflorance/truthfulqa_experiments"
MIT, APACHE, NC = "MIT", "Apache-2.0", "CC-BY-NC-4.0"

# name: (repo, path, extractor, license, kind, note)
SOURCES = {
    "advbench": (RD, "dataset/raw/advbench.csv", advbench, MIT, "harmful",
                 "AdvBench (Zou et al. 2023, MIT); 'goal' column only, the 'target' prefixes dropped"),
    "jailbreakbench": (RD, "dataset/raw/jailbreakbench.csv", jailbreakbench, MIT, "harmful",
                       "JailbreakBench behaviors (MIT); Goal, Category, Behavior"),
    "strongreject": (RD, "dataset/raw/strongreject.csv", strongreject, MIT, "harmful",
                     "StrongREJECT (MIT); forbidden_prompt, category, source"),
    "harmbench": (ADV, "data/behavior_datasets/harmbench_behaviors_text_all.csv", harmbench, MIT,
                  "harmful", "HarmBench text behaviors, test+val (MIT); ContextString dropped "
                  "(refusal_direction's harmbench_test/val.csv are subsets of this file)"),
    "catqa": (RI, "harmful_questions/catqa_english.json", catqa, APACHE, "harmful",
              "CatQA English (red-instruct, Apache-2.0)"),
    "catqa_zh": (RI, "harmful_questions/catqa_chinese.json", catqa, APACHE, "harmful",
                 "CatQA Chinese; off by default (the tiny base's LLM reads English)"),
    "catqa_vi": (RI, "harmful_questions/catqa_vietnamese.json", catqa, APACHE, "harmful",
                 "CatQA Vietnamese; off by default"),
    "do_not_answer": (DNA, "datasets/Instruction/do_not_answer_en.csv", do_not_answer, APACHE,
                      "harmful", "Do-Not-Answer, English original (Apache-2.0)"),
    "trustllm_misuse": (TL, "dataset/dataset.zip", trustllm("dataset/safety/misuse.json", _misuse),
                        MIT, "harmful", "TrustLLM safety/misuse.json prompts (repo MIT)"),
    "trustllm_stereotype": (TL, "dataset/dataset.zip",
                            trustllm("dataset/fairness/stereotype_query_test.json",
                                     lambda rows: [(r["prompt"], "", "") for r in rows]),
                            MIT, "harmful", "TrustLLM fairness/stereotype_query_test.json"),
    "trustllm_privacy": (TL, "dataset/dataset.zip",
                         trustllm("dataset/privacy/privacy_awareness_query.json", _privacy),
                         MIT, "harmful", "TrustLLM privacy awareness queries: the third party's "
                         "question only (the fake database in the prompt dropped)"),
    "trustllm_false_premise": (TL, "dataset/dataset.zip",
                               trustllm("dataset/truthfulness/golden_advfactuality.json",
                                        lambda rows: [(r["prompt"], "", "") for r in rows]),
                               MIT, "harmful", "TrustLLM false-premise queries (golden_advfactuality)"),
    "stl_cona": (STL, "data/evaluation/I-CoNa.json", stl, NC, "harmful",
                 "safety-tuned-llamas CoNa hateful instructions (data CC BY-NC 4.0)"),
    "stl_controversial": (STL, "data/evaluation/I-Controversial.json", stl, NC, "harmful",
                          "safety-tuned-llamas controversial instructions (CC BY-NC 4.0)"),
    "stl_malicious": (STL, "data/evaluation/I-MaliciousInstructions.json", stl, NC, "harmful",
                      "safety-tuned-llamas malicious instructions (CC BY-NC 4.0)"),
    "stl_physical_unsafe": (STL, "data/evaluation/I-PhysicalSafetyUnsafe.json", stl, NC, "harmful",
                            "safety-tuned-llamas / SafeText physical safety, unsafe side (CC BY-NC 4.0)"),
    "stl_physical_safe": (STL, "data/evaluation/I-PhysicalSafetySafe.json", stl, NC, "benign",
                          "safety-tuned-llamas / SafeText physical safety, safe side (CC BY-NC 4.0)"),
    "alpaca": (RD, "dataset/processed/alpaca.json", alpaca, NC, "benign",
               "Stanford Alpaca instructions without input (refusal_direction's processed copy; "
               "data CC BY-NC 4.0)"),
    "truthfulqa": (TQA, "datasets/TruthfulQA.csv", truthfulqa, APACHE, "benign",
                   "TruthfulQA questions only (Apache-2.0); benign contrast for `misleading`"),
}


def vendor(mirror: Path, names: list[str]) -> None:
    for name in names:
        repo, path, extract, license_, kind, note = SOURCES[name]
        data, commit = git_show(mirror, repo, path)
        rows, seen = [], set()
        for text, category, sub in extract(data):
            text = " ".join(str(text).split())
            if text and text not in seen:
                seen.add(text)
                rows.append({"id": f"{name}-{len(rows):05d}", "text": text,
                             "category": category or "", "subcategory": sub or ""})
        out = PUBLIC_DIR / name
        out.mkdir(parents=True, exist_ok=True)
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
        (out / "requests.jsonl").write_bytes(body)
        manifest = {
            "source": name, "repo": f"https://github.com/{repo}", "commit": commit, "path": path,
            "upstream_sha256": hashlib.sha256(data).hexdigest(), "license": license_,
            "non_commercial": license_ == NC, "kind": kind, "rows": len(rows),
            "sha256": hashlib.sha256(body).hexdigest(), "note": note,
            "kept": "request text and category labels only (exact duplicates within the file dropped)",
        }
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        log.info("%s: %d rows", name, len(rows))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    p.add_argument("sources", nargs="*", default=list(SOURCES))
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    vendor(args.mirrors, args.sources)
