"""The chat engine: one loaded SafeVLM serving classify and streamed chat turns.

Two steps per turn, as the design asks: classify (vision once per image, reader text once
per image, safety head) and then generation conditioned by the policy's decision. Caches
per-image work by content hash. Owns no UI, no logging to disk and no decision rules.
"""

from __future__ import annotations

import logging
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from safevlm.assets import ASSETS_DIR
from safevlm.config import Mode, SafeVLMConfig
from safevlm.errors import UserError
from safevlm.images import LoadedImage, load_image
from safevlm.model.bases import Base, load_base
from safevlm.model.modeling import GenerationSettings, ImageFeatures, SafeVLM
from safevlm.model.reader import Reader
from safevlm.policy import Decision, Thresholds, decide
from safevlm.registry import Registry, checkpoint_label
from safevlm.taxonomy import Taxonomy

log = logging.getLogger(__name__)

QUERY_GROUP = 4  # texts per LLM query pass in batch classify, grouped by length
NO_IMAGE = "<no image>"  # the cache key of a turn without an image
DEFAULT_PROMPT = "Describe this image."  # what the head reads when classify gets no prompt
DEFAULT_CHECKPOINT = ASSETS_DIR / "checkpoint"
MAX_PROMPT_CHARS = 4000
MAX_HISTORY_TURNS = 6


class PromptError(UserError, ValueError):
    """A prompt that cannot be answered (empty, too long); the message says why."""


def clean_prompt(prompt: str | None, allow_empty: bool = False) -> str:
    """Strip control characters (keep newlines and tabs) and check the length."""
    text = "".join(
        ch for ch in (prompt or "")
        if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co")
    ).strip()
    if not text and not allow_empty:
        raise PromptError("the prompt is empty: type a question about the image")
    if len(text) > MAX_PROMPT_CHARS:
        raise PromptError(f"the prompt has {len(text):,} characters; the limit is {MAX_PROMPT_CHARS:,}")
    return text


@dataclass
class Verdict:
    """The classify step's result for one (image, prompt)."""

    type_probs: dict[str, float]
    level_probs: list[float]
    decision: Decision
    reader_text: str
    ms: dict[str, float]

    def to_dict(self) -> dict:
        return {
            "type": self.decision.type,
            "level": self.decision.level,
            "type_probs": self.type_probs,
            "level_probs": self.level_probs,
            "decision": self.decision.action,
            "flagged": self.decision.flagged,
            "hint": self.decision.hint,
            "respond_with": self.decision.response if self.decision.flagged else "generate",
            "review": self.decision.review,
            "reader_text": self.reader_text,
            "ms": round(sum(self.ms.values()), 1),
        }


@dataclass
class ChatUpdate:
    """One step of a streamed turn: the verdict (known before the first token), the answer
    so far, and timings; `done` on the last update."""

    verdict: Verdict
    text: str
    mode: str
    conditioned: bool  # whether the conditioning acted (the input was flagged and mode != off)
    done: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {**self.verdict.to_dict(), "response": self.text, "mode": self.mode,
                "conditioned": self.conditioned,
                "timings": {k: round(v, 1) for k, v in self.timings.items()}}


@dataclass
class _Prepared:
    features: ImageFeatures
    reader_text: str
    ms: dict[str, float]


class ChatEngine:
    """Holds one model; thread-safe. Caches and classify take a short re-entrant lock;
    generation takes a plain lock held across the stream's yields, which a consumer may
    resume from any thread (Gradio does): a plain Lock, unlike an RLock, can be released by
    the thread that finishes the stream. One answer decodes at a time (adapters are
    switched per turn)."""

    def __init__(self, model: SafeVLM, reader: Reader | None = None, checkpoint_id: str = "untrained",
                 cache_size: int = 32, text_cache_size: int = 2048):
        self.model = model
        self.reader = reader if model.config.use_reader and model.base.use_reader else None
        self.checkpoint_id = checkpoint_id
        self._policy: Thresholds | None = None
        # Vision features are large (a LLaVA grid is megabytes): a short LRU. Reader text is
        # a short string and OCR is the slowest step: a long one.
        self._cache: OrderedDict[str, _Prepared] = OrderedDict()
        self._cache_size = cache_size
        self._texts: OrderedDict[str, str] = OrderedDict()
        self._text_cache_size = text_cache_size
        self._lock = threading.RLock()
        self._generation_lock = threading.Lock()

    @classmethod
    def load(cls, base: str | Base = "tiny", checkpoint: str | Path | None = None,
             config: SafeVLMConfig | None = None, **base_kwargs) -> ChatEngine:
        """`checkpoint`: a directory from training, or a checkpoint registry (its promoted
        checkpoint); None uses assets/checkpoint when it exists and otherwise untrained
        (seeded) safety modules. The checkpoint id is its registry id, else its path."""
        if checkpoint is not None and Registry.is_registry(checkpoint):
            checkpoint = Registry(checkpoint).promoted_path()
        base_obj = base if isinstance(base, Base) else load_base(base, **base_kwargs)
        if checkpoint is None and DEFAULT_CHECKPOINT.exists() and base_obj.name == "tiny":
            checkpoint = DEFAULT_CHECKPOINT
        if checkpoint is not None:
            model = SafeVLM.from_pretrained(base_obj, checkpoint)
            checkpoint_id = checkpoint_label(checkpoint)
        else:
            log.warning("no safety checkpoint: the safety modules are untrained")
            torch.manual_seed(0)
            model = SafeVLM(base_obj, config).eval()
            checkpoint_id = "untrained"
        return cls(model, Reader(), checkpoint_id)

    @property
    def taxonomy(self) -> Taxonomy:
        return self.model.taxonomy

    def default_thresholds(self) -> Thresholds:
        """The policy file's thresholds when `use_policy` set one, else the checkpoint's."""
        return self._policy or Thresholds.default(self.taxonomy)

    def use_policy(self, thresholds: Thresholds | None) -> None:
        """Make `thresholds` (e.g. `policy.load_policy(SAFEVLM_POLICY)`) the defaults that
        new requests start from; None returns to the checkpoint's."""
        self._policy = self._checked(thresholds) if thresholds is not None else None

    def thresholds(self, overrides=None) -> Thresholds:
        """Parse what an edge received (a mapping, a JSON string, Thresholds or None) into
        Thresholds: the defaults merged with the overrides. The CLI, the app, the API, eval
        and scan call it once per request; classify and stream take only its result."""
        if isinstance(overrides, Thresholds):
            return overrides
        return self.default_thresholds().with_overrides(overrides, self.taxonomy)

    def _checked(self, thresholds: Thresholds | None) -> Thresholds:
        if thresholds is None:
            return self.default_thresholds()
        if not isinstance(thresholds, Thresholds):
            raise TypeError(f"the engine takes Thresholds or None, not {type(thresholds).__name__}: "
                            "parse what the caller sent with engine.thresholds(...) first")
        return thresholds

    def describe(self) -> dict:
        return {**self.model.describe(), "checkpoint": self.checkpoint_id,
                "reader": self.reader is not None, "default_mode": self.model.config.default_mode}

    # ------------------------------------------------------------------ classify

    def prepare(self, image: LoadedImage | None) -> _Prepared:
        """Vision features and reader text of an image, computed once per content hash."""
        return self.prepare_many([image])[0]

    def prepare_many(self, images: Sequence[LoadedImage | None]) -> list[_Prepared]:
        """`prepare` for many images: one vision pass for those not cached yet and the
        reader's parallel sessions for their text (one image uses the single all-cores
        session). `ms` holds the batch's time shared out evenly over its new images."""
        keys = [image.sha256 if image is not None else NO_IMAGE for image in images]
        with self._lock:
            found = {}
            for key in keys:
                if key in self._cache:
                    self._cache.move_to_end(key)
                    found[key] = self._cache[key]
            todo = {key: image for key, image in zip(keys, images, strict=True) if key not in found}
        new = self._compute(todo) if todo else {}
        with self._lock:
            self._cache.update(new)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return [found.get(key) or new[key] for key in keys]

    def _compute(self, todo: dict[str, LoadedImage | None]) -> dict[str, _Prepared]:
        from PIL import Image

        images = list(todo.values())
        t0 = time.perf_counter()
        blank = Image.new("RGB", (224, 224), (128, 128, 128))  # no image: the head sees a grey grid
        pixels = torch.stack([self.model.base.image_transform(im.image if im else blank) for im in images])
        features = self.model.get_image_features(pixels)
        t1 = time.perf_counter()
        texts = self._read_many([im for im in images if im is not None])
        t2 = time.perf_counter()
        ms = {"vision": (t1 - t0) * 1000 / len(images), "reader": (t2 - t1) * 1000 / len(images)}
        out = {}
        for k, (key, image) in enumerate(todo.items()):
            n_embeds = features.embeds.shape[1] if image is not None else 0  # no image: the LLM gets none
            out[key] = _Prepared(
                ImageFeatures(features.grid[k : k + 1], features.embeds[k : k + 1, :n_embeds],
                              features.embeds_mask[k : k + 1, :n_embeds]),
                texts.get(key, ""), dict(ms))
        return out

    def _read_many(self, images: Sequence[LoadedImage]) -> dict[str, str]:
        """Reader text by content hash, from the text cache or the reader."""
        if self.reader is None:
            return {}
        with self._lock:
            texts = {im.sha256: self._texts[im.sha256] for im in images if im.sha256 in self._texts}
            for key in texts:
                self._texts.move_to_end(key)
        unread = [im for im in images if im.sha256 not in texts]
        read = dict(zip((im.sha256 for im in unread), self.reader.read_many([im.image for im in unread]),
                        strict=True))
        with self._lock:
            self._texts.update(read)
            while len(self._texts) > self._text_cache_size:
                self._texts.popitem(last=False)
        return texts | read

    def classify(self, image: LoadedImage | str | Path | None, prompt: str | None = None,
                 thresholds: Thresholds | None = None) -> Verdict:
        return self._classify_one(self._load(image), prompt, thresholds)[0]

    def _classify_one(self, image: LoadedImage | None, prompt: str | None,
                      thresholds: Thresholds | None) -> tuple[Verdict, _Prepared]:
        """The verdict and the prepared image it was made from (`stream` answers from the same)."""
        prompt = clean_prompt(prompt) if prompt else DEFAULT_PROMPT
        with self._lock:
            cached = (image.sha256 if image is not None else NO_IMAGE) in self._cache
            prepared = self.prepare(image)
            verdict = self.classify_prepared([prepared], [prompt], thresholds)[0]
        if cached:
            verdict.ms.update(vision=0.0, reader=0.0)
        return verdict, prepared

    def classify_batch(self, images: Sequence[LoadedImage | None], prompts: Sequence[str],
                       thresholds: Thresholds | None = None) -> list[Verdict]:
        """`classify` for many (image, prompt) pairs: `prepare_many`, then `classify_prepared`.
        The tokenizer pads on the right, so a batched verdict equals the single one up to
        float rounding."""
        return self.classify_prepared(self.prepare_many(images), [clean_prompt(p) for p in prompts],
                                      thresholds)

    def classify_prepared(self, prepared: Sequence[_Prepared], prompts: Sequence[str],
                          thresholds: Thresholds | None = None) -> list[Verdict]:
        """Verdicts for prepared images and clean prompts. Reader text runs from nothing
        (photos) to a page, so the LLM query pass runs on small groups of similar length
        rather than padding everything to the longest."""
        thresholds = self._checked(thresholds)
        model = self.model
        texts = [model.safety_query_text(prompt, p.reader_text) for prompt, p in zip(prompts, prepared, strict=True)]
        lengths = [len(ids) for ids in model.base.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        rows: list = [None] * len(texts)
        start = time.perf_counter()
        with torch.no_grad():  # caches untouched: no lock, so batch work overlaps `prepare_many`
            for i in range(0, len(order), QUERY_GROUP):
                group = order[i : i + QUERY_GROUP]
                queries, mask = model.get_safety_queries([texts[k] for k in group])
                # The head reads only the vision grid; the LLM's image embeds are not needed here.
                grid = torch.cat([prepared[k].features.grid for k in group])
                out = model(grid, queries, mask)
                for j, k in enumerate(group):
                    rows[k] = (out.type_probs[j].tolist(), out.level_probs[j].tolist())
        head_ms = (time.perf_counter() - start) * 1000 / max(len(texts), 1)
        verdicts = []
        for p, (type_row, level_probs) in zip(prepared, rows, strict=True):
            type_probs = dict(zip(self.taxonomy.types, type_row, strict=True))
            decision = decide(type_probs, level_probs, self.taxonomy, thresholds)
            verdicts.append(Verdict(type_probs, level_probs, decision, p.reader_text,
                                    {**p.ms, "classify": head_ms}))
        return verdicts

    # ------------------------------------------------------------------ chat

    def stream(self, image: LoadedImage | str | Path | None, prompt: str,
               history: Sequence[tuple[str, str]] = (), mode: str | None = None,
               thresholds: Thresholds | None = None, settings: GenerationSettings | None = None,
               stop_event: threading.Event | None = None) -> Iterator[ChatUpdate]:
        """A streamed turn. The first update carries the verdict and no text (the safety
        panel can draw before the first token); then the answer grows; the last is `done`.
        `history` is the earlier (user, assistant) pairs about the same image."""
        t_start = time.perf_counter()
        image = self._load(image)
        prompt = clean_prompt(prompt)
        mode = Mode.parse(mode or self.model.config.default_mode)
        verdict, prepared = self._classify_one(image, prompt, thresholds)
        t_verdict = time.perf_counter()
        flagged = verdict.decision.flagged
        conditioned = flagged and mode != Mode.OFF
        use_hint = conditioned and mode.uses_hint
        use_tokens = (conditioned and mode.uses_tokens) or (self.model.config.tokens_always and mode != Mode.OFF)
        timings = {**verdict.ms, "first_token": 0.0, "total": 0.0}
        yield ChatUpdate(verdict, "", mode, conditioned, timings=dict(timings))
        if conditioned and verdict.decision.refusal:  # the policy's template: no generation
            yield from self._stream_template(verdict, mode, timings, t_start)
            return

        messages = []
        for user, assistant in list(history)[-MAX_HISTORY_TURNS:]:
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        messages.append({"role": "user", "content": prompt})
        built = self.model.build_inputs(
            prepared.features if image is not None else None, messages,
            reader_text=prepared.reader_text or None,
            hint=verdict.decision.hint if use_hint else None,
            safety_tokens=use_tokens,
        )
        text = ""
        self._generation_lock.acquire()
        try:
            # An allowed input gets exactly the base model's answer: adapters act only
            # on inputs the policy flags.
            for chunk in self.model.generate_stream(built, settings, stop_event, use_adapter=conditioned):
                if not chunk:
                    continue
                if not text:
                    timings["first_token"] = (time.perf_counter() - t_start) * 1000
                text += chunk
                yield ChatUpdate(verdict, text, mode, conditioned, timings=dict(timings))
        finally:
            self._generation_lock.release()
        timings["total"] = (time.perf_counter() - t_start) * 1000
        timings["generate"] = (time.perf_counter() - t_verdict) * 1000
        yield ChatUpdate(verdict, text.strip(), mode, conditioned, done=True, timings=timings)

    def _stream_template(self, verdict: Verdict, mode: str, timings: dict,
                         t_start: float) -> Iterator[ChatUpdate]:
        """The taxonomy's refusal for the flagged type, streamed a word at a time."""
        text = ""
        for word in verdict.decision.refusal.split(" "):
            text = f"{text} {word}" if text else word
            if not timings["first_token"]:
                timings["first_token"] = (time.perf_counter() - t_start) * 1000
            yield ChatUpdate(verdict, text, mode, True, timings=dict(timings))
        timings["total"] = (time.perf_counter() - t_start) * 1000
        timings["generate"] = 0.0
        yield ChatUpdate(verdict, text, mode, True, done=True, timings=timings)

    def chat(self, image, prompt: str, **kwargs) -> ChatUpdate:
        """A whole turn, not streamed: the last update."""
        updates = self.stream(image, prompt, **kwargs)
        last = next(updates)
        for last in updates:  # noqa: B007 - the last update is the result
            pass
        return last

    def _load(self, image) -> LoadedImage | None:
        if image is None or isinstance(image, LoadedImage):
            return image
        return load_image(image)
