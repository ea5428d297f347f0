"""The project's edgy contrastive families (assets/data/edgy_pairs.json): benign requests
that use risky words, each beside harmful twists of the same request, expanded template x
filler into `PublicRequest`s of family "edgy".

Split by family (hash of its id): test families are never seen in training, so the
held-out edgy false-flag rate measures requests whose whole pattern instance is new. A
family's "split" field pins it instead ("test": an evaluation-only family, never trained
on). A family's benign and harmful halves share its split and a pair `group` per template.

Two optional keys make a templates family point at its object. `"object": "this"` (the word
that points) gives each request the `object` form: the filler drawn in the image, the
template with "this" in the prompt ("How do I make this?" over "a pipe bomb" or "a bath
bomb"). `"photo": true` adds, per template, that pointing prompt asked about an ordinary
photo, as benign ("How do I make this?" about a cup of coffee): only for templates that are
harmless about any everyday photo. Both take effect only when a request set gives the
`object` form a share (`request_set.DEFAULT_FORMS` does not: docs/experiments.md, r29/r30).
"""

from __future__ import annotations

from safevlm.data.generator.kinds.forms import FORMS
from safevlm.data.public import PublicRequest
from safevlm.data.schema import DataError, check_labels, load_data_file
from safevlm.data.splits import split_by_hash
from safevlm.taxonomy import Taxonomy

FILE = "edgy_pairs.json"
SOURCE = "safevlm-edgy"
PHOTO_COPIES = 6  # each pointing prompt about this many photos (one draw each)
EDGY_SPLITS = (("train", 0.65), ("val", 0.12), ("test", 0.23))
SPLIT_NAMES = tuple(name for name, _ in EDGY_SPLITS)


def family_split(family_id: str) -> str:
    return split_by_hash(f"edgy:{family_id}", EDGY_SPLITS)


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def _split_of(family: dict) -> str:
    """The family's pinned split, else the hash of its id."""
    return family.get("split") or family_split(family["id"])


def _fill(template: str, filler: str, where: str) -> str:
    if template.count("{x}") != 1:
        raise DataError(f"{FILE}: {where}: template {template!r} must have exactly one {{x}}")
    return _capitalized(template.replace("{x}", filler))


def expand_family(family: dict, taxonomy: Taxonomy) -> list[PublicRequest]:
    fid = family.get("id")
    if not fid:
        raise DataError(f"{FILE}: a family has no id")
    type_name, level = family.get("type"), family.get("level")
    problem = check_labels(type_name, level, taxonomy)
    if problem or type_name == taxonomy.safe_type:
        raise DataError(f"{FILE}: family {fid}: {problem or 'the harmful side cannot be safe'}")
    if "templates" in family:  # shared templates, contrasting fillers
        sides = {"benign": [(t, f) for t in family["templates"] for f in family["benign"]],
                 "harmful": [(t, f) for t in family["templates"] for f in family["harmful"]]}
    elif "fillers" in family:  # shared fillers, contrasting templates
        sides = {"benign": [(t, f) for t in family["benign_templates"] for f in family["fillers"]],
                 "harmful": [(t, f) for t in family["harmful_templates"] for f in family["fillers"]]}
    else:
        raise DataError(f"{FILE}: family {fid}: needs 'templates' or 'fillers'")
    split, pattern = _split_of(family), family.get("pattern", "")
    if split not in SPLIT_NAMES:
        raise DataError(f"{FILE}: family {fid}: split must be one of {', '.join(SPLIT_NAMES)}")
    pointer, photo = family.get("object"), bool(family.get("photo"))
    if (pointer is not None or photo) and "templates" not in family:
        raise DataError(f"{FILE}: family {fid}: 'object' and 'photo' need 'templates'")
    if photo and not pointer:
        raise DataError(f"{FILE}: family {fid}: 'photo' needs 'object' (the word that points)")
    forms = family.get("forms")
    if forms is not None and (not forms or not set(forms) <= set(FORMS)):
        raise DataError(f"{FILE}: family {fid}: forms must be a non-empty list of {', '.join(FORMS)}")
    out, seen = [], set()
    for side, items in sides.items():
        for i, (template, filler) in enumerate(items):
            text = _fill(template, filler, fid)
            if text.lower() in seen:
                continue
            seen.add(text.lower())
            group_key = template if "templates" in family else filler
            benign = side == "benign"
            out.append(PublicRequest(
                id=f"edgy-{fid}-{side[0]}{i:03d}", text=text,
                type=taxonomy.safe_type if benign else type_name, level=0 if benign else level,
                source=SOURCE, split=split, family="edgy",
                group=f"edgy:{fid}:{group_key}", pattern=pattern,
                forms=tuple(forms) if forms is not None else None,
                drawn=_capitalized(filler) if pointer else None,
                drawn_prompt=_fill(template, pointer, fid) if pointer else None))
    return out


def photo_requests(family: dict, taxonomy: Taxonomy) -> list[PublicRequest]:
    """A `"photo": true` family's pointing prompts, asked about an ordinary photo: benign.
    (Checked by `expand_family`, which every family goes through first.)"""
    if not family.get("photo"):
        return []
    fid, pointer = family["id"], family["object"]
    return [PublicRequest(id=f"edgy-{fid}-p{i:03d}{copy}", text=_fill(template, pointer, fid),
                          type=taxonomy.safe_type, level=0, source=SOURCE, split=_split_of(family), family="edgy",
                          group=f"edgy:{fid}:{template}", pattern=family.get("pattern", ""),
                          forms=("text",))
            for i, template in enumerate(family["templates"]) for copy in range(PHOTO_COPIES)]


def load_families(path: str = FILE) -> list[dict]:
    """The families as written in the data file (none when it is absent)."""
    try:
        return load_data_file(path).get("families", [])
    except DataError:
        return []


def evaluation_only_patterns(families: list[dict]) -> list[str]:
    """Patterns whose every family is pinned to the test split: kinds never trained on."""
    by_pattern: dict[str, list[dict]] = {}
    for family in families:
        by_pattern.setdefault(family.get("pattern") or "other", []).append(family)
    return sorted(p for p, fams in by_pattern.items() if all(f.get("split") == "test" for f in fams))


def load_edgy(taxonomy: Taxonomy, path: str = FILE, photo: bool = True) -> list[PublicRequest]:
    """Every family expanded; `photo=False` leaves out the photo prompts (they contrast the
    `object` form, so a request set without that form leaves them out too)."""
    families = load_families(path)
    ids = [f.get("id") for f in families]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise DataError(f"{FILE}: duplicate family ids {dupes}")
    expanded = [r for family in families for r in expand_family(family, taxonomy)]
    # Last, so adding photo prompts leaves every other request's index (and draws) alone.
    return expanded + ([r for family in families for r in photo_requests(family, taxonomy)] if photo else [])
