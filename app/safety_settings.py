"""The Safety settings panel as values: slider values to `Thresholds`, the conditioning mode,
the note a regenerated turn carries and the preview line. Thresholds rules stay in `policy`."""

from collections.abc import Sequence

from app.panel import ACTION_COLOURS, IDLE_COLOUR
from app.session import ChatSession
from safevlm.config import Mode
from safevlm.engine import ChatEngine
from safevlm.errors import one_line
from safevlm.policy import ThresholdError, Thresholds, decide


def thresholds_from_values(engine: ChatEngine, values: Sequence) -> Thresholds:
    """Slider values (one per risk type in taxonomy order, then the level) -> Thresholds;
    optionally followed by the levels whose flagged inputs get the refusal template."""
    taxonomy = engine.taxonomy
    n = len(taxonomy.risk_types)
    if len(values) not in (n + 1, n + 2):
        raise ThresholdError(f"expected {n + 1} threshold values, got {len(values)}")
    overrides: dict = {name: float(v) for name, v in zip(taxonomy.risk_types, values[:n], strict=True)}
    overrides["level"] = float(values[n])
    if len(values) == n + 2:
        template = {int(level) for level in (values[n + 1] or [])}
        overrides["responses"] = {str(level): "template" if level in template else "generate"
                                  for level in range(1, taxonomy.max_level + 1)}
    return engine.thresholds(overrides)


def default_values(engine: ChatEngine) -> list:
    """The settings' default values, in the order of `thresholds_from_values`: the type
    thresholds, the level threshold, then the levels answered by the refusal template."""
    defaults = engine.default_thresholds()
    template = [lv for lv in range(1, engine.taxonomy.max_level + 1) if defaults.response(lv) == "template"]
    return [defaults.types[name] for name in engine.taxonomy.risk_types] + [defaults.level, template]


def check_mode(mode: str | None, default_mode: str) -> Mode:
    """The conditioning mode to use; empty means the checkpoint's default."""
    return Mode.parse((mode or "").strip() or default_mode)


def thresholds_note(engine: ChatEngine, thresholds: Thresholds) -> str:
    """Which thresholds differ from the defaults, for the line of a regenerated turn."""
    default = engine.default_thresholds()
    taxonomy = engine.taxonomy
    labels = dict(zip(taxonomy.types, taxonomy.type_labels, strict=True))
    changed = [
        f"{labels[t]} {v:.2f}" for t, v in thresholds.types.items() if v != default.types.get(t)
    ]
    if thresholds.level != default.level:
        changed.append(f"level {thresholds.level:.2f}")
    return "thresholds " + (", ".join(changed) if changed else "default")


def preview_html(
    engine: ChatEngine, session: ChatSession | None, threshold_values: Sequence[float]
) -> str:
    """What the current thresholds would decide for the last turn's probabilities."""
    if session is None or session.type_probs is None:
        return ""
    try:
        thresholds = thresholds_from_values(engine, threshold_values)
    except ThresholdError as error:
        return f"⚠ {one_line(error)}"
    decision = decide(session.type_probs, session.level_probs, engine.taxonomy, thresholds)
    colour = ACTION_COLOURS.get(decision.action, IDLE_COLOUR)
    return (
        f"With these thresholds the last input would be "
        f'<b style="color:{colour}">{decision.action.upper()}</b>. '
        f"Press <b>Regenerate</b> to answer with them."
    )
