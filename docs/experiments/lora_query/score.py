"""Score a stage-1 checkpoint on cached features: test, figstep_eval (from DATA's caches) and
the external text sets (queries computed here; with --lora, by the merged query adapter).
usage: score.py CKPT DATA OUT.json [LORA_DIR]"""
import json, sys, random
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, "/work/main")
from safevlm.data.schema import read_jsonl
from safevlm.metrics import auroc
from safevlm.model.bases import load_base
from safevlm.model.modeling import SafeVLM
from safevlm.policy import Thresholds, decide
from train.features import FeatureCache, build_examples, make_reader, head_probabilities
from train.calibrate import safe_group

ckpt, data, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
tag = sys.argv[4] if len(sys.argv) > 4 else "frozen"
lora = Path(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[5] != "-" else None
normed = "--normed" in sys.argv
base = load_base("tiny")
model = SafeVLM.from_pretrained(base, ckpt, load_adapter=False).eval()
if lora:
    from peft import PeftModel
    tm = base.text_model
    merged = PeftModel.from_pretrained(tm, lora).merge_and_unload()
    assert merged is tm or all(a is b for a, b in zip(merged.layers, tm.layers))
if normed:  # the features the experiment's caches hold: 16 layers, final norm applied
    from safevlm.model.modeling import MAX_QUERY_TOKENS
    tm = base.text_model
    tm.layers = tm.layers[:16]
    tok = base.tokenizer
    @torch.no_grad()
    def queries(texts):
        enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=MAX_QUERY_TOKENS,
                  add_special_tokens=False)
        mask = enc["attention_mask"]
        h = tm(input_ids=enc["input_ids"], attention_mask=mask, output_hidden_states=True, use_cache=False).hidden_states[16]
        return h.float(), mask.bool()
    model.get_safety_queries = queries
tax = model.taxonomy
thr = Thresholds.default(tax)
print("thresholds", thr.types, thr.level, flush=True)
reader = make_reader(model)
res = {}
sets = [("val", data / "val.jsonl", data), ("test", data / "test.jsonl", data),
        ("figstep", data / "figstep_eval/figstep_eval.jsonl", data / "figstep_eval"),
        ("xstest", Path("/work/ext/xstest/xstest.jsonl"), Path("/work/exp/s30/extcache") / tag),
        ("jade_en", Path("/work/ext/jade/jade_en.jsonl"), Path("/work/exp/s30/extcache") / tag),
        ("jade_zh", Path("/work/ext/jade/jade_zh.jsonl"), Path("/work/exp/s30/extcache") / tag)]
for name, path, folder in sets:
    recs = read_jsonl(path, tax)
    if name == "jade_zh":
        recs = random.Random(0).sample(recs, 400)
    cache = FeatureCache.for_model(folder, model)
    ex = build_examples(model, recs, cache, reader, desc=name)
    probs = head_probabilities(model, ex)
    fl = np.array([decide(t, lv, tax, thr).flagged for t, lv in probs])
    risk = np.array([1 - t[tax.safe_index] for t, lv in probs])
    lvl = np.array([e.level for e in ex]); safe = np.array([e.type_index == tax.safe_index for e in ex])
    harm = lvl >= 2
    d = {"n": len(ex), "harmful_flagged": float(fl[harm].mean()) if harm.any() else None,
         "safe_flagged": float(fl[safe].mean()) if safe.any() else None,
         "auroc": auroc([int(h) for h in harm[harm | safe]], risk[harm | safe].tolist()) if harm.any() and safe.any() else None}
    if name in ("val", "test", "figstep"):
        grp = np.array([safe_group(e) for e in ex]); form = np.array([(e.record.meta or {}).get("form") or "gen" for e in ex])
        for g in ("edgy", "ordinary", "generated"):
            d[f"{g}_safe_flagged"] = float(fl[safe & (grp == g)].mean()) if (safe & (grp == g)).any() else None
            d[f"{g}_harmful_flagged"] = float(fl[harm & (grp == g)].mean()) if (harm & (grp == g)).any() else None
        for f in ("text", "typo", "split"):
            d[f"form_{f}_harmful"] = float(fl[harm & (form == f)].mean()) if (harm & (form == f)).any() else None
        src = np.array([e.record.source for e in ex]).astype(str)
        style = np.char.startswith(src, "safevlm-edgy/request_style")
        if style.any():
            d["request_style_benign_flagged"] = float(fl[safe & style].mean()) if (safe & style).any() else None
            d["request_style_harmful_flagged"] = float(fl[harm & style].mean()) if (harm & style).any() else None
    res[name] = d
    print(name, {k: (round(v, 3) if isinstance(v, float) else v) for k, v in d.items()}, flush=True)
out.write_text(json.dumps(res, indent=1))
