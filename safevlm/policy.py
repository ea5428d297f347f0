"""The policy: turns the safety head's probabilities into a decision and a hint.

Pure values in, pure values out, no torch: the CLI, the app and the eval share it.
Rule (the paper's "hint unless level 0 or type safe", with thresholds instead of argmax):
an input is flagged when some risk type reaches its threshold AND the probability of a
non-zero level reaches the level threshold. A flagged input gets the most probable
flagged type and the most probable non-zero level; the top level means `refuse`,
other levels `caution`. Setting either threshold kind to 0 defers to the other.
Per level, a flagged input is answered by the model, conditioned (`generate`, the paper's
way) or by the taxonomy's refusal for its type with no generation (`template`): the
decision's `response`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from safevlm.errors import UserError
from safevlm.taxonomy import GENERATE, RESPONSES, TEMPLATE, Taxonomy

ALLOW, CAUTION, REFUSE = "allow", "caution", "refuse"


class ThresholdError(UserError, ValueError):
    """Thresholds that cannot be used; the message says which value and why."""


@dataclass(frozen=True)
class Thresholds:
    types: dict[str, float] = field(default_factory=dict)
    level: float = 0.5
    responses: dict[int, str] = field(default_factory=dict)  # level -> generate | template
    # Optional review band: an input whose probabilities lie within this margin of a threshold
    # is decided as usual and also marked `review` (0 = off).
    review: float = 0.0

    @classmethod
    def default(cls, taxonomy: Taxonomy) -> Thresholds:
        return cls(dict(taxonomy.default_type_thresholds), taxonomy.default_level_threshold,
                   dict(taxonomy.default_responses))

    def response(self, level: int) -> str:
        return self.responses.get(level, GENERATE)

    def with_overrides(self, overrides: Mapping | str | None, taxonomy: Taxonomy) -> Thresholds:
        """Merge user overrides: a mapping or JSON like {"illegal_risk": 0.3, "level": 0.4}
        or {"types": {...}, "level": 0.4}, optionally with "responses": {"2": "generate"}
        (or one word for every level) and "review": a margin in [0, 0.5] (the review band).
        Unknown names and values outside [0, 1] raise."""
        if overrides is None or overrides == "":
            return self
        if isinstance(overrides, str):
            try:
                overrides = json.loads(overrides)
            except json.JSONDecodeError as e:
                raise ThresholdError(f"thresholds are not valid JSON: {e}") from None
        if not isinstance(overrides, Mapping):
            raise ThresholdError("thresholds must be a JSON object, e.g. {\"illegal_risk\": 0.3}")
        types = dict(self.types)
        level, review = self.level, self.review
        if "types" in overrides and not isinstance(overrides["types"], Mapping):
            raise ThresholdError("\"types\" must be an object of type name -> number")
        responses = _responses(overrides.get("responses"), self.responses, taxonomy)
        flat = dict(overrides.get("types", {}))
        flat.update({k: v for k, v in overrides.items() if k not in ("types", "responses")})
        for name, value in flat.items():
            value = _probability(name, value)
            if name == "review":
                if value > 0.5:
                    raise ThresholdError(f"review must be a margin in [0, 0.5], got {value}")
                review = value
            elif name == "level":
                level = value
            elif name in taxonomy.risk_types:
                types[name] = value
            else:
                known = ", ".join((*taxonomy.risk_types, "level", "review"))
                raise ThresholdError(f"unknown threshold {name!r}; known: {known}")
        return Thresholds(types, level, responses, review)

    def to_dict(self) -> dict:
        out = {"types": dict(self.types), "level": self.level,
               "responses": {str(k): v for k, v in sorted(self.responses.items())}}
        if self.review:
            out["review"] = self.review
        return out


def load_policy(path: str | Path, taxonomy: Taxonomy) -> Thresholds:
    """The thresholds of a policy file (`safevlm feedback thresholds --out FILE`):
    {"thresholds": {"types": {...}, "level": ..., "responses": {...}}, "source": {...}},
    merged over the taxonomy's defaults. Any problem raises ThresholdError naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ThresholdError(f"cannot read the policy file {path}: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ThresholdError(f"the policy file {path} is not JSON: {e}") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("thresholds"), Mapping):
        raise ThresholdError(f"the policy file {path} has no \"thresholds\" object "
                             "(write one with `safevlm feedback thresholds --out`)")
    try:
        return Thresholds.default(taxonomy).with_overrides(data["thresholds"], taxonomy)
    except ThresholdError as e:
        raise ThresholdError(f"the policy file {path}: {e}") from None


def _responses(value, current: Mapping[int, str], taxonomy: Taxonomy) -> dict[int, str]:
    """Merge a responses override: one word for every level, or {level: word}."""
    out = dict(current)
    if value is None:
        return out
    if isinstance(value, str):
        value = {lv: value for lv in range(1, taxonomy.max_level + 1)}
    if not isinstance(value, Mapping):
        raise ThresholdError(f"\"responses\" must be {' or '.join(RESPONSES)}, or an object level -> one of them")
    for key, word in value.items():
        try:
            lv = int(key)
        except (TypeError, ValueError):
            lv = -1
        if not 1 <= lv <= taxonomy.max_level or isinstance(key, bool):
            raise ThresholdError(f"responses: level {key!r} must be 1..{taxonomy.max_level}")
        if word not in RESPONSES:
            raise ThresholdError(f"responses: level {lv} must be {' or '.join(RESPONSES)}, got {word!r}")
        out[lv] = word
    return out


def _probability(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ThresholdError(f"threshold {name!r} must be a number in [0, 1], got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise ThresholdError(f"threshold {name!r} must be in [0, 1], got {value}")
    return float(value)


@dataclass(frozen=True)
class Decision:
    action: str  # allow | caution | refuse
    type: str  # the flagged risk type, or the taxonomy's safe type
    level: int  # 0 when allowed
    hint: str | None  # the sentence conditioning the answer, None when allowed
    flagged_types: tuple[str, ...] = ()
    response: str = GENERATE  # a flagged input's answer: the model's, or the refusal template
    refusal: str | None = None  # the template's text when response == "template"
    review: bool = False  # within the review band of a threshold: worth a person's look

    @property
    def flagged(self) -> bool:
        return self.action != ALLOW

    def to_dict(self) -> dict:
        d = asdict(self)
        d["flagged_types"] = list(self.flagged_types)
        d["flagged"] = self.flagged
        return d


def decide(
    type_probs: Mapping[str, float] | Sequence[float],
    level_probs: Sequence[float],
    taxonomy: Taxonomy,
    thresholds: Thresholds | None = None,
) -> Decision:
    """The decision for one input. `type_probs` maps type name -> probability (or is a
    sequence in taxonomy order); `level_probs` is in level order."""
    thresholds = thresholds or Thresholds.default(taxonomy)
    if not isinstance(type_probs, Mapping):
        if len(type_probs) != len(taxonomy.types):
            raise ValueError(f"expected {len(taxonomy.types)} type probabilities, got {len(type_probs)}")
        type_probs = dict(zip(taxonomy.types, type_probs, strict=True))
    if len(level_probs) != len(taxonomy.levels):
        raise ValueError(f"expected {len(taxonomy.levels)} level probabilities, got {len(level_probs)}")

    flagged = tuple(
        t for t in taxonomy.risk_types
        if float(type_probs[t]) >= thresholds.types.get(t, taxonomy.default_type_thresholds[t])
    )
    risk_mass = 1.0 - float(level_probs[0])
    review = _in_review_band(type_probs, risk_mass, taxonomy, thresholds)
    if not flagged or risk_mass < thresholds.level:
        return Decision(ALLOW, taxonomy.safe_type, 0, None, flagged, review=review)

    risk_type = max(flagged, key=lambda t: float(type_probs[t]))
    level = 1 + max(range(len(level_probs) - 1), key=lambda i: float(level_probs[i + 1]))
    action = REFUSE if level == taxonomy.max_level else CAUTION
    response = thresholds.response(level)
    refusal = taxonomy.refusal(risk_type) if response == TEMPLATE else None
    return Decision(action, risk_type, level, taxonomy.hint(risk_type, level), flagged,
                    response, refusal, review)


def _in_review_band(type_probs: Mapping[str, float], risk_mass: float, taxonomy: Taxonomy,
                    thresholds: Thresholds) -> bool:
    """Whether a small move of a threshold would change the decision: some risk type within
    `review` of its threshold, or the level mass within it of the level threshold while some
    type reaches its threshold minus the margin."""
    margin = thresholds.review
    if margin <= 0:
        return False
    limits = {t: thresholds.types.get(t, taxonomy.default_type_thresholds[t]) for t in taxonomy.risk_types}
    if any(abs(float(type_probs[t]) - limit) <= margin for t, limit in limits.items()):
        return True
    return (abs(risk_mass - thresholds.level) <= margin
            and any(float(type_probs[t]) >= limit - margin for t, limit in limits.items()))
