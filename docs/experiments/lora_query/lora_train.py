"""Train LoRA (layers 0-15 of SmolLM2-135M) + a linear type classifier on the mean-pooled layer-16
state, on every train record's query text (type CE, 7 classes); then write a query-feature
cache computed by the adapted LLM for every text in data/gen's frozen cache, so the recipe's
stage 1 can train its head on the adapted features. EPOCHS 0 writes the same cache from the
frozen LLM (the control)."""
import sys, time, random
from pathlib import Path
import torch, torch.nn as nn
sys.path.insert(0, "/work/main")
torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 2)
from safevlm.config import SafeVLMConfig
from safevlm.data.schema import read_jsonl
from safevlm.model.bases import load_base
from safevlm.model.modeling import SafeVLM, MAX_QUERY_TOKENS
from train.features import FeatureCache, build_examples, make_reader
from peft import LoraConfig, get_peft_model

torch.manual_seed(0); random.seed(0)
OUT = Path(sys.argv[1]); OUT.mkdir(parents=True, exist_ok=True)
EPOCHS = float(sys.argv[2])
LAYER = 16
data = Path("/work/main/data/gen")
base = load_base("tiny")
model = SafeVLM(base, SafeVLMConfig(base=base.name, query_layer=LAYER)).eval()
tax = model.taxonomy
cache = FeatureCache.for_model(data, model)
ex = build_examples(model, read_jsonl(data / "train.jsonl", tax), cache, make_reader(model), desc="train",
                    with_queries=False, ocr_share=0.15)
train = [(model.safety_query_text(e.record.prompt, e.reader_text), e.type_index) for e in ex]
keys = list(cache.queries)
qpath = cache.queries_path
del cache, ex, model
print("train", len(train), "cache keys", len(keys), flush=True)
tok = base.tokenizer
tm = base.text_model
tm.layers = tm.layers[:LAYER]
tm.float()

def hidden(m, texts, grad):
    enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=MAX_QUERY_TOKENS, add_special_tokens=False)
    mask = enc["attention_mask"]
    with torch.set_grad_enabled(grad):
        h = m(input_ids=enc["input_ids"], attention_mask=mask, output_hidden_states=True, use_cache=False).hidden_states[LAYER]
    return h, mask

def adapt(tm):
    """LoRA + type classifier trained on the train texts; returns the merged LLM."""
    lm = get_peft_model(tm, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05,
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    head = nn.Sequential(nn.LayerNorm(tm.config.hidden_size), nn.Linear(tm.config.hidden_size, len(tax.types)))
    params = [p for p in lm.parameters() if p.requires_grad]
    bs = 16; steps = int(EPOCHS * len(train) / bs)
    opt = torch.optim.AdamW([{"params": params, "lr": 2e-4}, {"params": head.parameters(), "lr": 1e-3}], weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[2e-4, 1e-3], total_steps=steps, pct_start=0.1)
    lossf = nn.CrossEntropyLoss()
    lm.train(); t0 = time.time(); order = []
    for step in range(steps):
        if not order:
            order = list(range(len(train))); random.shuffle(order)
        idx = [order.pop() for _ in range(min(bs, len(order)))]
        h, mask = hidden(lm, [train[i][0] for i in idx], True)
        w = mask.unsqueeze(-1).float(); pooled = (h * w).sum(1) / w.sum(1).clamp(min=1)
        loss = lossf(head(pooled), torch.tensor([train[i][1] for i in idx]))
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        if step % 50 == 0:
            print(f"step {step}/{steps} loss {loss.item():.3f} {time.time()-t0:.0f}s", flush=True)
    lm.save_pretrained(OUT / "query_lora")
    torch.save(head.state_dict(), OUT / "type_head.pt")
    return lm.merge_and_unload().eval()


lm = adapt(tm) if EPOCHS > 0 else tm.eval()  # EPOCHS 0: the frozen control, cut and normed the same way
print("features for", len(keys), flush=True)
queries = {}
order = sorted(keys, key=lambda t: (len(t), t))
t0 = time.time()
with torch.no_grad():
    for s in range(0, len(order), 32):
        chunk = order[s:s + 32]
        h, mask = hidden(lm, chunk, False)
        for text, q, m in zip(chunk, h, mask.bool()):
            queries[text] = q[m].half().clone()
        if s % 3200 == 0:
            print(f"features {s}/{len(order)} {time.time()-t0:.0f}s", flush=True)
dq = OUT / "data"
dq.mkdir(exist_ok=True)
torch.save(queries, dq / qpath.name)
print("saved", dq / qpath.name, flush=True)
