"""The risk taxonomy: type names, level names, which type means "safe", hint sentences
and default thresholds, all read from one JSON file in assets/.

Owns no torch and no decision logic (that is `policy`); code asks the taxonomy
(`taxonomy.safe_index`, `len(taxonomy.types)`) instead of typing numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from safevlm.assets import ASSETS_DIR
from safevlm.errors import SafeVLMError

DEFAULT_TAXONOMY_PATH = ASSETS_DIR / "taxonomy.json"
# How a flagged input is answered: the model, conditioned ("generate", the paper's way), or
# the taxonomy's refusal for its type, streamed with no generation ("template").
GENERATE, TEMPLATE = "generate", "template"
RESPONSES = (GENERATE, TEMPLATE)
GENERIC_REFUSAL = "I can't help with that request. I'm happy to help with something else."


class TaxonomyError(SafeVLMError, ValueError):
    """A taxonomy file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Taxonomy:
    name: str
    types: tuple[str, ...]
    type_labels: tuple[str, ...]
    safe_type: str
    levels: tuple[str, ...]
    level_labels: tuple[str, ...]
    hints: dict[str, dict[int, str]] = field(default_factory=dict)
    default_type_thresholds: dict[str, float] = field(default_factory=dict)
    default_level_threshold: float = 0.5
    descriptions: dict[str, str] = field(default_factory=dict)
    # The project's refusal per risk type, and per level whether a flagged input is answered
    # by the model ("generate") or by that refusal ("template"); absent levels generate.
    refusals: dict[str, str] = field(default_factory=dict)
    default_responses: dict[int, str] = field(default_factory=dict)

    @property
    def safe_index(self) -> int:
        return self.types.index(self.safe_type)

    @property
    def risk_types(self) -> tuple[str, ...]:
        return tuple(t for t in self.types if t != self.safe_type)

    @property
    def max_level(self) -> int:
        return len(self.levels) - 1

    def type_index(self, name: str) -> int:
        try:
            return self.types.index(name)
        except ValueError:
            raise TaxonomyError(
                f"unknown type {name!r} for taxonomy {self.name!r}; known: {', '.join(self.types)}"
            ) from None

    def refusal(self, type_name: str) -> str:
        """The refusal streamed instead of an answer for a risk type."""
        return self.refusals.get(type_name) or GENERIC_REFUSAL

    def hint(self, type_name: str, level: int) -> str | None:
        """The hint sentence for a risky (type, level), or None for safe inputs."""
        if type_name == self.safe_type or level <= 0:
            return None
        return self.hints.get(type_name, {}).get(level)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "types": [
                {"name": t, "label": lab, "description": self.descriptions.get(t, "")}
                for t, lab in zip(self.types, self.type_labels, strict=True)
            ],
            "safe_type": self.safe_type,
            "levels": [
                {"name": lv, "label": lab}
                for lv, lab in zip(self.levels, self.level_labels, strict=True)
            ],
            "hints": {t: {str(k): v for k, v in d.items()} for t, d in self.hints.items()},
            "default_thresholds": {
                "types": dict(self.default_type_thresholds),
                "level": self.default_level_threshold,
                "responses": {str(k): v for k, v in self.default_responses.items()},
            },
            "refusals": dict(self.refusals),
        }

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>") -> Taxonomy:
        try:
            types = [t["name"] for t in data["types"]]
            type_labels = [t.get("label", t["name"]) for t in data["types"]]
            levels = [lv["name"] for lv in data["levels"]]
            level_labels = [lv.get("label", lv["name"]) for lv in data["levels"]]
            safe_type = data["safe_type"]
        except (KeyError, TypeError) as e:
            raise TaxonomyError(f"{source}: missing or malformed field {e}") from None
        if safe_type not in types:
            raise TaxonomyError(f"{source}: safe_type {safe_type!r} is not one of the types")
        if len(set(types)) != len(types) or len(levels) < 2:
            raise TaxonomyError(f"{source}: type names must be unique and there must be >= 2 levels")
        hints: dict[str, dict[int, str]] = {}
        for t, by_level in data.get("hints", {}).items():
            if t not in types:
                raise TaxonomyError(f"{source}: hint for unknown type {t!r}")
            hints[t] = {int(k): str(v) for k, v in by_level.items()}
        thr = data.get("default_thresholds", {})
        type_thr = {t: float(thr.get("types", {}).get(t, 0.5)) for t in types if t != safe_type}
        refusals = {str(k): str(v) for k, v in data.get("refusals", {}).items()}
        unknown = sorted(set(refusals) - set(types) | ({safe_type} & set(refusals)))
        if unknown:
            raise TaxonomyError(f"{source}: refusal for unknown or safe type(s) {unknown}")
        try:
            responses = {int(k): str(v) for k, v in thr.get("responses", {}).items()}
        except (TypeError, ValueError, AttributeError):
            raise TaxonomyError(f"{source}: default_thresholds.responses must map levels to actions") from None
        bad = {k: v for k, v in responses.items() if v not in RESPONSES or not 1 <= k < len(levels)}
        if bad:
            raise TaxonomyError(f"{source}: default_thresholds.responses {bad}: levels 1..{len(levels) - 1} "
                                f"map to one of {', '.join(RESPONSES)}")
        return cls(
            name=data.get("name", Path(source).stem),
            types=tuple(types),
            type_labels=tuple(type_labels),
            safe_type=safe_type,
            levels=tuple(levels),
            level_labels=tuple(level_labels),
            hints=hints,
            default_type_thresholds=type_thr,
            default_level_threshold=float(thr.get("level", 0.5)),
            descriptions={t["name"]: t.get("description", "") for t in data["types"]},
            refusals=refusals,
            default_responses=responses,
        )


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Read a taxonomy JSON file (default: assets/taxonomy.json)."""
    path = Path(path) if path else DEFAULT_TAXONOMY_PATH
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TaxonomyError(f"taxonomy file not found: {path}") from None
    except json.JSONDecodeError as e:
        raise TaxonomyError(f"{path}: not valid JSON ({e})") from None
    return Taxonomy.from_dict(data, source=str(path))
