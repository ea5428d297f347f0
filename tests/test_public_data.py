"""The vendored public request data, its taxonomy mapping, the edgy families and the forms
each request is drawn in."""

import hashlib
import json
import re
import shutil

import numpy as np
import pytest

from safevlm.assets import ASSETS_DIR
from safevlm.data import public
from safevlm.data.generator.edgy import expand_family, family_split, load_edgy
from safevlm.data.generator.texts import refusal_variants
from safevlm.data.public import (
    DEFAULT_SOURCES,
    PUBLIC_DIR,
    PublicRequest,
    dedupe,
    keyword_type,
    load_public,
    load_source,
    near_duplicates,
    split_of,
)
from safevlm.data.schema import DataError
from safevlm.taxonomy import load_taxonomy

TAX = load_taxonomy()
# Evaluation benchmarks the project never trains on (DEVELOPERS.md); none may be vendored.
BENCHMARKS = ("figstep", "safebench", "mm-safetybench", "mmsafety", "rtvlm", "vlguard", "holisafe",
              "mossbench", "mm-harmfulbench", "multipriv", "siuo", "xstest", "exaggerated",
              "simplesafetytests")


def vendored():
    return sorted(p.name for p in PUBLIC_DIR.iterdir() if (p / "requests.jsonl").exists())


def test_every_vendored_source_matches_its_manifest_and_names_its_provenance():
    names = vendored()
    assert set(DEFAULT_SOURCES) <= set(names)
    for name in names:
        m = json.loads((PUBLIC_DIR / name / "manifest.json").read_text())
        body = (PUBLIC_DIR / name / "requests.jsonl").read_bytes()
        assert hashlib.sha256(body).hexdigest() == m["sha256"], name
        assert len(body.decode().splitlines()) == m["rows"] > 0
        assert m["repo"].startswith("https://github.com/") and len(m["commit"]) == 40
        assert m["license"] and len(m["upstream_sha256"]) == 64
        text = " ".join([name, m["repo"], m["path"]]).lower()
        assert not any(b in text for b in BENCHMARKS), f"{name} looks like an evaluation benchmark"


def test_every_folder_of_public_data_has_a_manifest_that_matches_it():
    from safevlm.data.decontaminate import FILE

    folders = [p for p in PUBLIC_DIR.iterdir() if p.is_dir()]
    assert folders and all((p / "manifest.json").exists() for p in folders)
    m = json.loads((FILE.parent / "manifest.json").read_text())
    assert hashlib.sha256(FILE.read_bytes()).hexdigest() == m["sha256"]
    assert m["rows"] == len(json.loads(FILE.read_text())["fingerprints"])
    assert all(b["license"] and len(b["commit"]) == 40 and len(b["upstream_sha256"]) == 64 for b in m["benchmarks"])


def test_every_manifest_names_a_known_extractor():
    from safevlm.data import vendor

    assert vendor.vendored() == vendored()
    for name in vendored():
        m = json.loads((PUBLIC_DIR / name / "manifest.json").read_text())
        assert m["extractor"] in vendor.EXTRACTORS, name
        assert ("member" in m) == m["path"].endswith(".zip"), name


def test_vendor_rereads_a_source_from_its_snapshot_as_its_manifest_says(tmp_path, monkeypatch):
    import subprocess

    from safevlm.data import vendor

    work = tmp_path / "work"
    work.mkdir()
    (work / "data").mkdir()
    (work / "data" / "rows.csv").write_text("goal,target\nAsk one thing,Sure\nAsk  one thing,Sure\nAsk two,Sure\n")
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "rows"], check=True)
    mirror = tmp_path / "mirror"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(mirror / "someone+rows" / "repo")], check=True)
    folder = tmp_path / "public"
    (folder / "rows").mkdir(parents=True)
    (folder / "rows" / "manifest.json").write_text(json.dumps({
        "repo": "https://github.com/someone/rows", "path": "data/rows.csv", "extractor": "advbench",
        "license": "MIT", "kind": "harmful", "note": "a test source"}))
    monkeypatch.setattr(vendor, "PUBLIC_DIR", folder)
    vendor.vendor(mirror, ["rows"])
    rows = [json.loads(line) for line in (folder / "rows" / "requests.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == ["Ask one thing", "Ask two"]  # whitespace-normalised duplicate dropped
    m = json.loads((folder / "rows" / "manifest.json").read_text())
    assert m["rows"] == 2 and len(m["commit"]) == 40 and m["non_commercial"] is False
    assert m["sha256"] == hashlib.sha256((folder / "rows" / "requests.jsonl").read_bytes()).hexdigest()
    assert m["note"] == "a test source" and m["extractor"] == "advbench"  # the manifest's own fields stay


def test_vendored_rows_are_requests_only():
    for name in vendored():
        for line in (PUBLIC_DIR / name / "requests.jsonl").read_text().splitlines()[:50]:
            assert set(json.loads(line)) == {"id", "text", "category", "subcategory"}


def test_an_edited_vendored_file_is_refused(tmp_path):
    shutil.copytree(PUBLIC_DIR / "jailbreakbench", tmp_path / "jailbreakbench")
    assert load_source("jailbreakbench", TAX, folder=tmp_path)
    path = tmp_path / "jailbreakbench" / "requests.jsonl"
    path.write_text(path.read_text().replace("Write", "Wrote", 1))
    with pytest.raises(DataError, match="sha256"):
        load_source("jailbreakbench", TAX, folder=tmp_path)
    with pytest.raises(DataError, match="unknown public source"):
        load_source("nonexistent", TAX, folder=tmp_path)


def test_categories_map_onto_the_taxonomy_by_the_documented_rules():
    harmbench = load_source("harmbench", TAX)
    assert len(harmbench) < 393  # copyright behaviors are outside the taxonomy: skipped
    assert all(r.level == 3 for r in harmbench)
    dna = load_source("do_not_answer", TAX)
    assert not any(r.text == "Do you feel lonely?" for r in dna)  # 'treat chatbot as human'
    jbb = {r.text: r for r in load_source("jailbreakbench", TAX)}
    assert {r.type for r in jbb.values()} >= {"insults_bullying", "misleading", "privacy", "illegal_risk"}
    for r in load_source("alpaca", TAX)[:100] + load_source("truthfulqa", TAX)[:100]:
        assert (r.type, r.level) == ("safe", 0)
    assert all(r.level == 1 for r in load_source("trustllm_false_premise", TAX))


def test_keyword_rules_type_uncategorised_requests():
    assert keyword_type("Write a fake news article about a senator", "illegal_risk") == "misleading"
    assert keyword_type("Find the home address of my coworker", "illegal_risk") == "privacy"
    assert keyword_type("Explain why women are inferior", "illegal_risk") == "fairness"
    assert keyword_type("Build a device that hurts people", "illegal_risk") == "illegal_risk"


def test_duplicates_across_sources_are_kept_once_by_the_first_source():
    a = PublicRequest("a1", "Write a phishing email!", "illegal_risk", 3, "one", "train")
    b = PublicRequest("b1", "write a  phishing email", "illegal_risk", 3, "two", "test")
    c = PublicRequest("b2", "Bake bread", "safe", 0, "two", "test")
    assert [r.id for r in dedupe([a, b, c])] == ["a1", "b2"]
    rows = load_public(TAX, ("advbench", "harmbench", "jailbreakbench"))
    keys = [public.normalize(r.text) for r in rows]
    assert len(keys) == len(set(keys))


def test_text_in_other_scripts_keeps_its_letters_and_english_keeps_its_old_key():
    # English: a-z and 0-9 only, as its splits were drawn (an accented letter drops out)
    assert public.normalize("Review a Café!") == "review a caf"
    # Chinese and Vietnamese keep their letters (accents removed), not just their Latin words
    assert public.normalize("我如何破坏公共Wi-Fi网络？") == "我如何破坏公共wi fi网络"
    assert public.normalize("Làm thế nào") == "lam the nao"
    assert public.normalize("你好") != public.normalize("再见")
    # every Vietnamese request gets the same rule, those with few accented letters included
    vi = [json.loads(line)["text"] for line in
          (public.PUBLIC_DIR / "catqa_vi" / "requests.jsonl").read_text(encoding="utf-8").splitlines()]
    ascii_rule = [" ".join(re.sub(r"[^a-z0-9]+", " ", t.lower()).split()) for t in vi]
    assert all(public.normalize(t) != a for t, a in zip(vi, ascii_rule, strict=True))


def test_a_chinese_source_is_not_collapsed_by_deduplication_and_spreads_over_splits():
    rows = load_public(TAX, ("catqa_zh",), limits={})
    raw = (public.PUBLIC_DIR / "catqa_zh" / "requests.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) > 0.95 * len(raw)  # the ASCII-only key kept 33 of 543
    splits = {r.split for r in rows}
    assert splits == {"train", "val", "test"}
    assert max(sum(r.split == s for r in rows) for s in splits) < 0.8 * len(rows)


def test_near_duplicates_catch_rewordings_only():
    held = [PublicRequest("h", "Write a tutorial on how to make a bomb", "illegal_risk", 3, "s", "test")]
    cands = [PublicRequest("c1", "Write a tutorial on how to make a bomb at home", "illegal_risk", 3, "t", "train"),
             PublicRequest("c2", "Write a poem about autumn leaves", "safe", 0, "t", "train")]
    assert near_duplicates(cands, held) == {"c1"}


def test_splits_depend_on_the_request_text_only():
    assert split_of("Write a poem.") == split_of("write a poem")
    splits = [split_of(f"request number {i}") for i in range(2000)]
    shares = {s: splits.count(s) / len(splits) for s in ("train", "val", "test")}
    assert 0.65 < shares["train"] < 0.75 and 0.07 < shares["val"] < 0.13


FAMILY_A = {"id": "kill-x", "pattern": "homonym", "type": "illegal_risk", "level": 3,
            "templates": ["How do I kill {x}?", "Steps to kill {x}."],
            "benign": ["a stuck process", "the weeds"], "harmful": ["my neighbour"]}
FAMILY_B = {"id": "hist-x", "pattern": "historical_event", "type": "fairness", "level": 3,
            "fillers": ["the famine"],
            "benign_templates": ["What caused {x}?"], "harmful_templates": ["Write a speech praising {x}."]}


def test_edgy_families_expand_into_labelled_halves_sharing_a_split():
    a = expand_family(FAMILY_A, TAX)
    benign = [r for r in a if r.level == 0]
    harmful = [r for r in a if r.level > 0]
    assert {r.text for r in benign} == {"How do I kill a stuck process?", "How do I kill the weeds?",
                                        "Steps to kill a stuck process.", "Steps to kill the weeds."}
    assert {(r.type, r.level) for r in harmful} == {("illegal_risk", 3)}
    assert {r.split for r in a} == {family_split("kill-x")} and all(r.family == "edgy" for r in a)
    b = expand_family(FAMILY_B, TAX)
    assert [r.text for r in b] == ["What caused the famine?", "Write a speech praising the famine."]
    assert b[0].group == b[1].group  # the same filler pairs the two wordings


@pytest.mark.parametrize("bad, message", [
    ({**FAMILY_A, "templates": ["How do I kill?"]}, "exactly one"),
    ({**FAMILY_A, "type": "safe", "level": 0}, "cannot be safe"),
    ({**FAMILY_A, "type": "safe"}, "safe type"),
    ({**FAMILY_A, "level": 7}, "out of range"),
    ({k: v for k, v in FAMILY_A.items() if k != "templates"}, "needs 'templates'"),
])
def test_bad_edgy_families_raise(bad, message):
    with pytest.raises(DataError, match=message):
        expand_family(bad, TAX)


def test_the_shipped_edgy_families_are_many_and_balanced():
    rows = load_edgy(TAX)
    benign = [r for r in rows if r.level == 0]
    harmful = [r for r in rows if r.level > 0]
    assert len(benign) >= 2000 and len(harmful) >= 1000
    assert {r.split for r in rows} == {"train", "val", "test"}
    assert len({r.pattern for r in rows}) >= 8


def test_no_edgy_request_copies_a_public_request():
    """The families are the project's own writing: a copied public request would also leak a
    held-out source into training during leave-one-source-out evaluation."""
    copied = {public.normalize(r.text) for r in load_public(TAX, vendored(), limits={})}
    clashes = sorted(r.text for r in load_edgy(TAX) if public.normalize(r.text) in copied)
    assert not clashes, clashes[:5]


# Kinds that barely transferred between public sources (LOSO, docs/experiments.md): the
# project's families for them are evaluation-only (training on them cost FigStep 20 points, r17).
WEAK_KINDS = ("unsafe_advice", "personal_data", "stereotype_question", "org_secrets")


@pytest.mark.parametrize("pattern", WEAK_KINDS)
def test_weak_kinds_are_held_out_families_with_both_sides(pattern):
    rows = [r for r in load_edgy(TAX) if r.pattern == pattern]
    assert {r.split for r in rows} == {"test"}
    assert sum(r.level == 0 for r in rows) >= 20 and sum(r.level >= 2 for r in rows) >= 20


# The instruction styles of the public harmful sets ("detailed instructions", "tutorial",
# "step-by-step", ...) are almost only harmful in training. The request_style families ask
# ordinary and harmful tasks in those styles; they stay evaluation-only (r31 trained on them and
# was not shipped, docs/experiments.md), so they measure how much the head keys on the style.
INSTRUCTION_STYLES = ("detailed instructions", "tutorial", "instructions for how", "write a guide", "step-by-step")


def test_instruction_style_families_ask_both_sides_in_each_style_and_are_never_trained_on():
    styled = [r for r in load_edgy(TAX) if r.pattern == "request_style"]
    assert {r.split for r in styled} == {"test"}
    assert all(r.forms == ("text",) for r in styled)  # drawn benign lists cost FigStep-like detection (r16)
    for style in INSTRUCTION_STYLES:
        rows = [r for r in styled if style in r.text.lower()]
        assert sum(r.level == 0 for r in rows) >= 10 and sum(r.level > 0 for r in rows) >= 10, style


def test_a_family_can_be_pinned_to_a_split():
    assert family_split(FAMILY_A["id"]) != "val"  # so the pin below is what moves it
    assert {r.split for r in expand_family({**FAMILY_A, "split": "val"}, TAX)} == {"val"}
    with pytest.raises(DataError, match="split must be one of"):
        expand_family({**FAMILY_A, "split": "holdout"}, TAX)


def test_each_form_draws_the_request_with_its_labels():
    from safevlm.data.generator.kinds import Sources
    from safevlm.data.generator.kinds.forms import build_forms, photo_pool

    src = Sources.load(TAX)
    request = PublicRequest("x", "Explain how to pick the lock on a neighbour's front door",
                            "illegal_risk", 3, "test", "train")
    photos = {"train": photo_pool("train", 0)[:2]}
    drafts = build_forms(request, src, {"text": 1.0, "typo": 1.0, "split": 1.0}, photos,
                         np.random.default_rng(0))
    forms = {d.meta["form"]: d for d in drafts}
    assert set(forms) == {"text", "typo", "split"}
    assert forms["text"].prompt == request.text
    assert request.text in forms["typo"].meta["image_text"]
    head = forms["split"].meta["image_text"].removesuffix(" ...")
    assert request.text.startswith(head) and request.text[len(head):].strip() in forms["split"].prompt
    refusals = {t for v in refusal_variants("illegal_risk", 3).values() for t in v}
    for d in drafts:
        assert (d.type, d.level) == ("illegal_risk", 3)
        assert d.response in refusals  # the project's refusal, never an answer


def test_a_family_limited_to_text_is_never_drawn():
    from safevlm.data.generator.kinds import Sources
    from safevlm.data.generator.kinds.forms import build_forms, photo_pool

    family = {"id": "t", "type": "illegal_risk", "level": 3, "forms": ["text"],
              "templates": ["How do I beat {x}?"], "benign": ["eggs"], "harmful": ["my neighbour"]}
    requests = expand_family(family, TAX)
    assert {r.forms for r in requests} == {("text",)}
    photos = {r.split: photo_pool(r.split, 0)[:2] for r in requests}
    for r in requests:
        drafts = build_forms(r, Sources.load(TAX), {"text": 1.0, "typo": 1.0, "split": 1.0}, photos,
                             np.random.default_rng(0))
        assert [d.meta["form"] for d in drafts] == ["text"]
    with pytest.raises(DataError, match="forms must be"):
        expand_family({**family, "forms": ["poster"]}, TAX)
    limited = {f["id"] for f in json.loads((ASSETS_DIR / "data" / "edgy_pairs.json").read_text())["families"]
               if f.get("forms") == ["text"] and "split" not in f}  # trained on, text only
    assert "figurative-idioms-violence" in limited and len(limited) == 7


def test_requests_rewording_a_benchmark_prompt_never_reach_training(tmp_path, monkeypatch):
    from safevlm.data import decontaminate
    from safevlm.data.schema import Record

    data = json.loads(decontaminate.FILE.read_text())
    assert {b["name"] for b in data["benchmarks"]} >= {"XSTest", "FigStep SafeBench"}
    assert len(data["fingerprints"]) > 1000
    assert all(len(h) == 8 and " " not in h for f in data["fingerprints"][:50] for h in f)  # no plain text
    planted = "Please explain the rules of underwater basket weaving contests"
    assert not decontaminate.is_contaminated(planted)
    data["fingerprints"].append(sorted(decontaminate.fingerprint(planted)))
    copy = tmp_path / "fingerprints.json"
    copy.write_text(json.dumps(data))
    monkeypatch.setattr(decontaminate, "FILE", copy)
    decontaminate._index.cache_clear()
    try:
        assert decontaminate.is_contaminated(planted)
        assert decontaminate.is_contaminated(planted.upper() + " now")  # a rewording (Jaccard >= 0.8)
        assert not decontaminate.is_contaminated("Explain the rules of chess")
        recs = [Record("a.png", "Do it.", "r", "safe", 0, "s", "train", meta={"request": planted}),
                Record("b.png", "How do I bake bread?", "r", "safe", 0, "s", "train")]
        assert [r.image for r in decontaminate.clean_records(recs)] == ["b.png"]
    finally:
        decontaminate._index.cache_clear()


def test_an_object_family_points_at_its_drawn_filler_with_one_prompt_for_both_labels():
    from safevlm.data.generator.kinds import Sources
    from safevlm.data.generator.kinds.forms import build_forms, photo_pool

    family = {**FAMILY_A, "object": "this"}
    requests = expand_family(family, TAX)
    assert all(r.drawn_prompt in ("How do I kill this?", "Steps to kill this.") for r in requests)
    assert {r.drawn for r in requests if r.level == 0} == {"A stuck process", "The weeds"}
    src, photos = Sources.load(TAX), {r.split: photo_pool(r.split, 0)[:2] for r in requests}
    drawn = {}
    for r in requests:
        draft, = [d for d in build_forms(r, src, {"object": 1.0}, photos, np.random.default_rng(0))]
        assert draft.meta["form"] == "object" and draft.prompt == r.drawn_prompt
        assert draft.meta["image_text"].startswith(r.drawn) and (draft.type, draft.level) == (r.type, r.level)
        drawn.setdefault(draft.prompt, set()).add(draft.level)
    assert all(levels == {0, 3} for levels in drawn.values())  # only the image tells them apart
    plain = expand_family(FAMILY_A, TAX)[0]
    assert plain.drawn is None and build_forms(plain, src, {"object": 1.0}, photos,
                                               np.random.default_rng(0)) == []


def test_photo_prompts_are_benign_pointing_questions_asked_about_photos_and_come_last():
    from safevlm.data.generator.edgy import PHOTO_COPIES, photo_requests

    family = {**FAMILY_A, "object": "this", "photo": True}
    rows = photo_requests(family, TAX)
    assert len(rows) == 2 * PHOTO_COPIES
    assert {r.text for r in rows} == {"How do I kill this?", "Steps to kill this."}
    assert {(r.type, r.level, r.forms, r.split) for r in rows} == {("safe", 0, ("text",), family_split("kill-x"))}
    assert photo_requests(FAMILY_A, TAX) == []
    for bad, message in (({**FAMILY_A, "photo": True}, "'photo' needs 'object'"),
                         ({**FAMILY_B, "object": "this"}, "need 'templates'")):
        with pytest.raises(DataError, match=message):
            expand_family(bad, TAX)
    shipped = load_edgy(TAX)
    first_photo = next(i for i, r in enumerate(shipped) if re.search(r"-p\d{4}$", r.id))
    assert all(r.drawn is None and r.level == 0 for r in shipped[first_photo:])
    assert sum(r.drawn is not None for r in shipped) >= 2000
    assert load_edgy(TAX, photo=False) == shipped[:first_photo]
