"""Threshold calibration: choose the checkpoint's default thresholds on the validation split.

The policy flags an input when some risk type reaches its threshold and P(level > 0)
reaches the level threshold (`safevlm.policy.decide`). Untrained defaults (0.5 / 0.5) are
arbitrary; this picks one shared type threshold and the level threshold from a grid so
that, on validation data, as many risky inputs as possible are flagged while at most
`max_false_flags` of safe ones are (`safevlm.feedback.thresholds.calibrate`, which the feedback
loop shares). Ties go to the higher thresholds (fewer false flags).
The result is written into the checkpoint's taxonomy, so the app, the CLI and the eval
start from it; users still override it per request.

Validation only: the test split and the FigStep-like set never choose thresholds.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import torch

from safevlm.feedback.calibration import TEMPERATURES
from safevlm.feedback.thresholds import calibrate
from safevlm.metrics import ece
from safevlm.model.modeling import SafeVLM
from safevlm.policy import Thresholds
from safevlm.taxonomy import Taxonomy
from train.features import Example, head_logits, head_probabilities

log = logging.getLogger(__name__)

ECE_BINS = 15


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> float:
    """ECE of the top class (`safevlm.metrics.ece`, the eval's) on tensors."""
    return ece(probs.tolist(), labels.tolist(), bins)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature (from a log grid) with the lowest negative log-likelihood."""
    nll = [torch.nn.functional.cross_entropy(logits / t, labels).item() for t in TEMPERATURES]
    return TEMPERATURES[min(range(len(nll)), key=nll.__getitem__)]


def calibrate_temperature(model: SafeVLM, examples: Sequence[Example]) -> dict:
    """Fit the type and level temperatures on `examples` (val) and set them in the model's
    config; returns the temperatures with the ECE and NLL before and after."""
    model.config = dataclasses.replace(model.config, type_temperature=1.0, level_temperature=1.0)
    type_logits, level_logits = head_logits(model, examples)
    y_type = torch.tensor([e.type_index for e in examples])
    y_level = torch.tensor([e.level for e in examples])
    t_type, t_level = fit_temperature(type_logits, y_type), fit_temperature(level_logits, y_level)
    model.config = dataclasses.replace(model.config, type_temperature=t_type, level_temperature=t_level)
    report = {"type_temperature": t_type, "level_temperature": t_level, "examples": len(examples)}
    for name, logits, y, t in (("type", type_logits, y_type, t_type), ("level", level_logits, y_level, t_level)):
        report[f"{name}_ece_before"] = round(expected_calibration_error(logits.softmax(-1), y), 4)
        report[f"{name}_ece_after"] = round(expected_calibration_error((logits / t).softmax(-1), y), 4)
    log.info("temperature scaling: %s", report)
    return report


# Val groups of safe inputs and their false-flag budgets: benign requests that use risky
# words (the edgy families) may be flagged a little more often than ordinary requests (the
# public instruction sets); the generator's own safe kinds (edgy titles, blank documents,
# emoji scenes; 108 safe val records, so a few records decide it) get 8%.
GROUP_LIMITS = {"edgy": 0.05, "ordinary": 0.02, "generated": 0.08}


def safe_group(example: Example) -> str:
    source = example.record.source
    if source.startswith("safevlm-edgy/"):
        return "edgy"
    return "ordinary" if source.startswith("public/") else "generated"


def apply_thresholds(model: SafeVLM, thresholds: Thresholds) -> None:
    """Make `thresholds` the checkpoint's defaults (saved with its config)."""
    data = model.taxonomy.to_dict()
    data["default_thresholds"] = thresholds.to_dict()
    model.taxonomy = Taxonomy.from_dict(data, source="calibration")
    model.config = dataclasses.replace(model.config, taxonomy=model.taxonomy.to_dict())


def calibrate_model(model: SafeVLM, val_examples: Sequence[Example], max_false_flags: float = 0.03) -> dict:
    """Fit temperatures, then thresholds, on `val_examples` and apply both to `model`;
    returns the report."""
    if not val_examples:
        return {"skipped": "no validation examples"}
    temperature = calibrate_temperature(model, val_examples)
    safe = model.taxonomy.safe_index
    probs = head_probabilities(model, val_examples)
    risky = [e.type_index != safe for e in val_examples]
    groups = [safe_group(e) for e in val_examples]
    if len(set(groups)) > 1:  # edgy and ordinary safe inputs: each within its own budget
        thresholds, report = calibrate(probs, risky, model.taxonomy, max_false_flags, groups, GROUP_LIMITS)
    else:
        thresholds, report = calibrate(probs, risky, model.taxonomy, max_false_flags)
    apply_thresholds(model, thresholds)
    return {**report, "temperature": temperature}


def main(argv: list[str] | None = None) -> int:
    """Calibrate a saved checkpoint in place: `python -m train.calibrate --checkpoint DIR`."""
    import argparse
    import json
    from pathlib import Path

    from safevlm.model.bases import load_base
    from safevlm.model.modeling import CONFIG_FILE
    from train.features import FeatureCache, make_reader, split_examples

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (rewritten in place)")
    p.add_argument("--data", default="data/gen", help="folder with val.jsonl (features are cached there)")
    p.add_argument("--base", default="tiny")
    p.add_argument("--max-false-flags", type=float, default=0.03)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    checkpoint, data = Path(args.checkpoint), Path(args.data)
    model = SafeVLM.from_pretrained(load_base(args.base), checkpoint, load_adapter=False)
    val = split_examples(model, data, "val", FeatureCache.for_model(data, model), make_reader(model))
    report = calibrate_model(model, val, args.max_false_flags)
    config = json.loads((checkpoint / CONFIG_FILE).read_text(encoding="utf-8"))
    config["taxonomy"] = model.config.taxonomy
    config["type_temperature"] = model.config.type_temperature
    config["level_temperature"] = model.config.level_temperature
    (checkpoint / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (checkpoint / "calibration.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
