"""Query-layer probe: which hidden state of the frozen LLM should the safety head read?

For every layer (0 = the token embeddings), a logistic probe on the mean-pooled hidden
states of the head's query text (the prompt and the text read in the image) separates risky
from safe inputs. Its threshold and the recommended layer are chosen on val only; test and
the FigStep-like set are reported beside them. Use it to set `query_layer` for a new base
(LLaVA-1.5-7B on a GPU host) or to see how much a base's text features can carry at all.

    python -m train.probe --data data/gen --out runs/probe [--base llava:DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from safevlm.config import SafeVLMConfig
from safevlm.data.schema import read_jsonl
from safevlm.metrics import auroc
from safevlm.model.bases import load_base
from safevlm.model.modeling import MAX_QUERY_TOKENS, SafeVLM
from train.features import FeatureCache, build_examples, make_reader

log = logging.getLogger(__name__)

MAX_FALSE_FLAGS = 0.03  # the val operating point, as in threshold calibration
FIGSTEP = Path("figstep_eval") / "figstep_eval.jsonl"


@torch.no_grad()
def pooled_hidden_states(model: SafeVLM, texts: list[str], batch_size: int = 16) -> np.ndarray:
    """(N, layers + 1, D): every hidden state of the frozen LLM for each text, mean-pooled
    over its valid positions (the head's queries at `query_layer`, pooled as the head pools)."""
    tok, base = model.base.tokenizer, model.base
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tok(texts[start : start + batch_size], return_tensors="pt", padding=True, truncation=True,
                  max_length=MAX_QUERY_TOKENS, add_special_tokens=False)
        mask = enc["attention_mask"].to(base.device)
        states = base.text_model(input_ids=enc["input_ids"].to(base.device), attention_mask=mask,
                                 output_hidden_states=True, use_cache=False).hidden_states
        weights = mask.unsqueeze(-1).float()
        pooled = [(h.float() * weights).sum(1) / weights.sum(1).clamp(min=1.0) for h in states]
        out.append(torch.stack(pooled, 1).cpu().numpy())
    return np.concatenate(out)


def _auroc(y: np.ndarray, scores: np.ndarray) -> float | None:
    return auroc(y.tolist(), scores.tolist())


def val_threshold(scores: np.ndarray, y: np.ndarray, max_false_flags: float = MAX_FALSE_FLAGS) -> float:
    """The lowest score threshold that flags at most `max_false_flags` of val's safe inputs."""
    safe = np.sort(scores[y == 0])
    if not len(safe):
        return float("-inf")
    allowed = int(np.floor(max_false_flags * len(safe)))
    return float(safe[len(safe) - allowed - 1])


def probe_layers(features: dict[str, tuple[np.ndarray, np.ndarray]], c: float = 0.1) -> list[dict]:
    """One row per layer: AUROC on every set, and at val's threshold the share of risky and
    safe inputs flagged. `features` maps set name -> (X (N, layers + 1, D), y risky 0/1);
    it needs 'train' and 'val'."""
    x_train, y_train = features["train"]
    rows = []
    for layer in range(x_train.shape[1]):
        scaler = StandardScaler().fit(x_train[:, layer])
        clf = LogisticRegression(C=c, max_iter=3000).fit(scaler.transform(x_train[:, layer]), y_train)
        scores = {name: clf.decision_function(scaler.transform(x[:, layer])) for name, (x, _) in features.items()}
        threshold = val_threshold(scores["val"], features["val"][1])
        sets = {}
        for name, (_, y) in features.items():
            flagged = scores[name] > threshold
            sets[name] = {
                "auroc": _auroc(y, scores[name]),
                "flagged_risky": float(flagged[y == 1].mean()) if (y == 1).any() else None,
                "flagged_safe": float(flagged[y == 0].mean()) if (y == 0).any() else None,
            }
        rows.append({"layer": layer, "sets": sets})
    return rows


def best_layer(rows: list[dict]) -> int:
    """The layer with the highest val AUROC (ties: the lower layer, a cheaper query pass)."""
    scored = [(r["sets"]["val"]["auroc"] or 0.0, -r["layer"]) for r in rows]
    return -max(scored)[1]


def table(rows: list[dict], names: list[str]) -> str:
    head = "| layer | " + " | ".join(f"{n} AUROC" for n in names) + " | flagged risky / safe at val threshold |"
    lines = [head, "|" + "---|" * (len(names) + 2)]
    last = names[-1]
    for r in rows:
        aurocs = " | ".join("n/a" if r["sets"][n]["auroc"] is None else f"{r['sets'][n]['auroc']:.3f}" for n in names)
        s = r["sets"][last]
        rate = "n/a" if s["flagged_risky"] is None else f"{s['flagged_risky']:.0%} / {s['flagged_safe'] or 0:.0%} ({last})"
        lines.append(f"| {r['layer']} | {aurocs} | {rate} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Linear probe of every LLM layer as the safety head's queries.")
    p.add_argument("--data", default="data/gen", help="folder with train/val/test.jsonl (and figstep_eval/)")
    p.add_argument("--out", required=True, help="folder for probe.json and probe.md")
    p.add_argument("--base", default="tiny")
    p.add_argument("--c", type=float, default=0.1, help="inverse L2 strength of the logistic probe")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    data, out = Path(args.data), Path(args.out)
    base = load_base(args.base)
    model = SafeVLM(base, SafeVLMConfig(base=base.name)).eval()
    reader = make_reader(model)
    sets = {name: (data / f"{name}.jsonl", data) for name in ("train", "val", "test")}
    if (data / FIGSTEP).exists():
        sets["figstep_eval"] = (data / FIGSTEP, data / FIGSTEP.parent)
    features = {}
    for name, (path, folder) in sets.items():
        records = read_jsonl(path, model.taxonomy)
        examples = build_examples(model, records, FeatureCache.for_model(folder, model), reader, desc=name,
                                  with_queries=False)  # every layer is pooled below instead
        texts = [model.safety_query_text(e.record.prompt, e.reader_text) for e in examples]
        y = np.array([e.type_index != model.taxonomy.safe_index for e in examples], dtype=int)
        features[name] = (pooled_hidden_states(model, texts), y)
    rows = probe_layers(features, c=args.c)
    result = {"base": base.id, "query_layer": model.config.query_layer, "best_layer_on_val": best_layer(rows),
              "max_false_flags": MAX_FALSE_FLAGS, "c": args.c,
              "examples": {n: int(len(y)) for n, (_, y) in features.items()}, "layers": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "probe.json").write_text(json.dumps(result, indent=2) + "\n")
    text = table(rows, [n for n in features if n != "train"])
    (out / "probe.md").write_text(f"# Query-layer probe ({base.id})\n\n{text}\n")
    print(text)
    print(f"best layer on val: {result['best_layer_on_val']} (the config's default: {model.config.query_layer})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
