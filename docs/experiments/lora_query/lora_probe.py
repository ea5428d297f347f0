"""Experiment: does LoRA on the query pass (text model layers 0-15) beat the frozen layer-16
features as a text-only safety classifier, now that there is public data at scale?
Same texts, same labels, same val-calibrated threshold for both arms."""
import copy, json, sys, time, random
from pathlib import Path
import numpy as np, torch, torch.nn as nn
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
sys.path.insert(0, "/work/main")
from safevlm.config import SafeVLMConfig
from safevlm.data.schema import read_jsonl
from safevlm.metrics import auroc
from safevlm.model.bases import load_base
from safevlm.model.modeling import SafeVLM
from train.features import FeatureCache, build_examples, make_reader
from peft import LoraConfig, get_peft_model

torch.manual_seed(0); random.seed(0)
OUT = Path(sys.argv[1]); OUT.mkdir(parents=True, exist_ok=True)
TRAIN_LIMIT = int(sys.argv[2]) if len(sys.argv) > 2 else 0
EPOCHS = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
LAYER, MAXTOK = 16, 96
data = Path("/work/main/data/gen")
base = load_base("tiny")
model = SafeVLM(base, SafeVLMConfig(base=base.name)).eval()
tax = model.taxonomy
reader = make_reader(model)

def family(src):
    return "edgy" if src.startswith("safevlm-edgy") else "public" if src.startswith("public") else "generated" if src.startswith("safevlm-gen") else src.split("/")[0]

sets = {}
for name, path, folder in [("train", data/"train.jsonl", data), ("val", data/"val.jsonl", data),
                           ("test", data/"test.jsonl", data),
                           ("figstep", data/"figstep_eval/figstep_eval.jsonl", data/"figstep_eval")]:
    recs = read_jsonl(path, tax)
    ex = build_examples(model, recs, FeatureCache.for_model(folder, model), reader, desc=name,
                        with_queries=False, ocr_share=0.15 if name == "train" else 1.0)
    rows = [dict(text=model.safety_query_text(e.record.prompt, e.reader_text), risky=int(e.type_index != tax.safe_index),
                 level=e.level, fam=family(e.record.source), form=(e.record.meta or {}).get("form") or "gen",
                 src=e.record.source) for e in ex]
    sets[name] = rows
    print(name, len(rows), flush=True)
for name, path in [("xstest", "/work/ext/xstest/xstest.jsonl"), ("jade_en", "/work/ext/jade/jade_en.jsonl"),
                   ("jade_zh", "/work/ext/jade/jade_zh.jsonl")]:
    recs = read_jsonl(Path(path), tax)
    if name == "jade_zh":
        recs = random.Random(0).sample(recs, 400)
    sets[name] = [dict(text=r.prompt, risky=int(r.type != "safe"), level=r.level, fam=name, form="text", src=r.source) for r in recs]
del model
tok = base.tokenizer
text_model = base.text_model
text_model.layers = text_model.layers[:LAYER]   # hidden_states[LAYER] is the last, unnormed
text_model.float()

def encode(tm, texts, grad=False):
    enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=MAXTOK, add_special_tokens=False)
    mask = enc["attention_mask"]
    with torch.set_grad_enabled(grad):
        h = tm(input_ids=enc["input_ids"], attention_mask=mask, output_hidden_states=True, use_cache=False).hidden_states[LAYER]
    w = mask.unsqueeze(-1).float()
    return (h * w).sum(1) / w.sum(1).clamp(min=1)

def pooled(tm, texts, bs=32):
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = [None] * len(texts)
    for s in range(0, len(order), bs):
        idx = order[s:s+bs]
        v = encode(tm, [texts[i] for i in idx]).detach()
        for i, row in zip(idx, v):
            out[i] = row
    return torch.stack(out).numpy()

def report(scores, tag):
    val = sets["val"]; sv = np.array(scores["val"]); yv = np.array([r["risky"] for r in val])
    safe = np.sort(sv[yv == 0]); thr = safe[len(safe) - int(0.03 * len(safe)) - 1]
    res = {"threshold": float(thr)}
    for name, rows in sets.items():
        if name == "train": continue
        s = np.array(scores[name]); y = np.array([r["risky"] for r in rows]); lv = np.array([r["level"] for r in rows])
        harm = lv >= 2; fl = s > thr
        d = {"n": len(rows), "harmful_flagged": float(fl[harm].mean()) if harm.any() else None,
             "safe_flagged": float(fl[y == 0].mean()) if (y == 0).any() else None,
             "auroc_harmful_vs_safe": auroc([int(h) for h in harm[harm | (y == 0)]], s[harm | (y == 0)].tolist()) if harm.any() and (y == 0).any() else None}
        for fam in sorted({r["fam"] for r in rows}):
            m = np.array([r["fam"] == fam for r in rows])
            if name in ("val", "test") and m.any():
                d[f"{fam}_harmful"] = float(fl[m & harm].mean()) if (m & harm).any() else None
                d[f"{fam}_safe"] = float(fl[m & (y == 0)].mean()) if (m & (y == 0)).any() else None
        for form in ("text", "typo", "split"):
            m = np.array([r["form"] == form for r in rows])
            if name == "test" and (m & harm).any():
                d[f"form_{form}_harmful"] = float(fl[m & harm].mean())
        res[name] = d
    (OUT / f"{tag}.json").write_text(json.dumps(res, indent=1))
    print(tag, json.dumps({k: ({kk: (round(vv, 3) if isinstance(vv, float) else vv) for kk, vv in v.items()} if isinstance(v, dict) else v) for k, v in res.items()}, indent=1), flush=True)
    return res

train = sets["train"]
if TRAIN_LIMIT and len(train) > TRAIN_LIMIT:
    train = random.Random(0).sample(train, TRAIN_LIMIT)
# --- arm A: frozen features, logistic probe (the recipe's layer) ---
t0 = time.time()
text_model.eval()
feats = {n: pooled(text_model, [r["text"] for r in (train if n == "train" else rows)]) for n, rows in sets.items()}
ytr = np.array([r["risky"] for r in train])
sc = StandardScaler().fit(feats["train"]); clf = LogisticRegression(C=0.1, max_iter=3000).fit(sc.transform(feats["train"]), ytr)
report({n: clf.decision_function(sc.transform(f)) for n, f in feats.items()}, "frozen_probe")
print("frozen arm", round(time.time() - t0), "s", flush=True)
# --- arm B: LoRA on layers 0-15 + linear head on the pooled layer-16 state ---
lm = get_peft_model(text_model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05,
                    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
head = nn.Linear(feats["train"].shape[1], 1)
with torch.no_grad():   # start from the probe, in the scaler's frame
    w = torch.tensor(clf.coef_[0] / sc.scale_, dtype=torch.float32)
    head.weight.copy_(w[None]); head.bias.fill_(float(clf.intercept_[0] - (clf.coef_[0] * sc.mean_ / sc.scale_).sum()))
params = [p for p in lm.parameters() if p.requires_grad]
opt = torch.optim.AdamW([{"params": params, "lr": 2e-4}, {"params": head.parameters(), "lr": 1e-3}], weight_decay=0.01)
bs = 16; steps = int(EPOCHS * len(train) / bs)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[2e-4, 1e-3], total_steps=steps, pct_start=0.1)
lossf = nn.BCEWithLogitsLoss()
lm.train(); t0 = time.time(); order = []
for step in range(steps):
    if not order:
        order = list(range(len(train))); random.shuffle(order)
    idx = [order.pop() for _ in range(min(bs, len(order)))]
    texts = [train[i]["text"] for i in idx]; y = torch.tensor([float(train[i]["risky"]) for i in idx])
    loss = lossf(head(encode(lm, texts, grad=True)).squeeze(-1), y)
    opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    if step % 50 == 0:
        print(f"step {step}/{steps} loss {loss.item():.3f} {time.time()-t0:.0f}s", flush=True)
lm.eval()
with torch.no_grad():
    scores = {n: head(torch.tensor(pooled(lm, [r["text"] for r in rows]))).squeeze(-1).numpy() for n, rows in sets.items() if n != "train"}
report(scores, "lora")
print("lora arm", round(time.time() - t0), "s", flush=True)
