"""SafeVLM: a frozen base plus the safety modules, wired as the paper describes.

image -> vision tower -> grid F; F -> base projector -> image embeds; F -> safety projector
-> safety embeds; prompt (+ reader text) -> frozen LLM text pass -> queries; safety head ->
type/level probabilities; LLM input [user: (safety tokens set 2) + image embeds, prompt
(+ hint)] -> streamed answer. Owns the wiring and save/load; the decision is `policy`'s.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import threading
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from safevlm.config import SafeVLMConfig
from safevlm.errors import one_line
from safevlm.model.bases import IMAGE_PLACEHOLDER, Base
from safevlm.model.modules import SafetyHead, SafetyMember, SafetyProjector, SafetyTokens
from safevlm.model.storage import CheckpointError, read_weights, write_weights
from safevlm.taxonomy import Taxonomy, TaxonomyError, load_taxonomy

log = logging.getLogger(__name__)
# With inputs_embeds the penalty sees only generated tokens, which is what we want.
warnings.filterwarnings("ignore", message="Passing `repetition_penalty` with `inputs_embeds`")

CONFIG_FILE = "safevlm_config.json"
WEIGHTS_FILE = "safety_modules.safetensors"
ADAPTER_DIR = "adapter"
MAX_QUERY_TOKENS = 256


@dataclass
class ImageFeatures:
    grid: torch.Tensor  # (B, C, h, w) vision features, input of the safety projector
    embeds: torch.Tensor  # (B, N, D) base projector output, the LLM's image tokens
    embeds_mask: torch.Tensor  # (B, N) True where an image token is real

    def select(self, i: int) -> ImageFeatures:
        return ImageFeatures(self.grid[i : i + 1], self.embeds[i : i + 1], self.embeds_mask[i : i + 1])


@dataclass
class SafetyOutput:
    type_logits: torch.Tensor  # (B, num_types)
    level_logits: torch.Tensor  # (B, num_levels)

    @property
    def type_probs(self) -> torch.Tensor:
        return self.type_logits.float().softmax(-1)

    @property
    def level_probs(self) -> torch.Tensor:
        return self.level_logits.float().softmax(-1)


@dataclass
class SafeVLMOutput(SafetyOutput):
    """`SafeVLM.forward`: the head's logits and, when labels are given, the paper's safety
    loss, weight x (CE type + CE level), with its two parts (detached, for logging)."""

    loss: torch.Tensor | None = None
    ce_type: torch.Tensor | None = None
    ce_level: torch.Tensor | None = None


@dataclass
class BuiltInputs:
    inputs_embeds: torch.Tensor  # (T, D)
    labels: torch.Tensor | None  # (T,) -100 outside the target answer


@dataclass
class GenerationSettings:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0: greedy, so answers are reproducible
    top_p: float = 0.9
    repetition_penalty: float = 1.1


class _StopOnEvent:
    """A transformers stopping criterion that ends generation when an event is set."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool,
                          device=input_ids.device)


class SafeVLM(nn.Module):
    """The safety modules (the only registered parameters) around a frozen `Base`."""

    def __init__(self, base: Base, config: SafeVLMConfig | None = None,
                 taxonomy: Taxonomy | None = None):
        super().__init__()
        config = config or SafeVLMConfig(base=base.name)
        if config.taxonomy:
            taxonomy = Taxonomy.from_dict(config.taxonomy, source="checkpoint config")
        taxonomy = taxonomy or load_taxonomy()
        for key, have in (("hidden_size", base.hidden_size), ("vision_channels", base.vision_channels)):
            want = getattr(config, key)
            if want and want != have:
                raise CheckpointError(
                    f"the safety modules were built for base {config.base!r} ({key}={want}) "
                    f"but this base {base.id!r} has {key}={have}; pass --base {config.base}"
                )
        config = config.override(
            hidden_size=base.hidden_size,
            vision_channels=base.vision_channels,
            query_layer=config.query_layer or max(1, round(base.num_layers * 2 / 3)),
            projector_width=config.projector_width or min(base.hidden_size, base.vision_channels),
            taxonomy=taxonomy.to_dict(),
        )
        if not 0 <= config.query_layer <= base.num_layers:
            raise ValueError(f"query_layer must be in [0, {base.num_layers}], got {config.query_layer}")
        self.config = config
        self.taxonomy = taxonomy
        self._base = [base]  # a list, so nn.Module does not register the frozen base
        embed_std = float(base.lm.get_input_embeddings().weight.float().std())
        self.safety_projector = SafetyProjector(
            base.vision_channels, base.hidden_size, config.projector_width, config.projector_grid
        )
        self.safety_tokens_head = SafetyTokens(config.num_head_tokens, base.hidden_size, embed_std)
        self.safety_tokens_llm = SafetyTokens(config.num_llm_tokens, base.hidden_size, embed_std)
        self.safety_head = SafetyHead(
            base.hidden_size, config.num_heads, len(taxonomy.types), len(taxonomy.levels)
        )
        if config.head_ensemble < 1:
            raise ValueError(f"head_ensemble must be >= 1, got {config.head_ensemble}")
        if config.head_ensemble > 1:
            self.safety_ensemble = nn.ModuleList(
                SafetyMember(
                    SafetyProjector(base.vision_channels, base.hidden_size, config.projector_width,
                                    config.projector_grid),
                    SafetyTokens(config.num_head_tokens, base.hidden_size, embed_std),
                    SafetyHead(base.hidden_size, config.num_heads, len(taxonomy.types), len(taxonomy.levels)),
                )
                for _ in range(config.head_ensemble - 1)
            )
        self.to(base.device)

    @property
    def base(self) -> Base:
        return self._base[0]

    @property
    def device(self) -> torch.device:
        return self.safety_head.type_head.weight.device

    # ------------------------------------------------------------------ features

    @torch.no_grad()
    def get_image_features(self, pixel_values: torch.Tensor) -> ImageFeatures:
        """Run the frozen vision tower and base projector once; reuse for classify and chat."""
        pixel_values = pixel_values.to(self.base.device)
        grid = self.base.vision_tower(pixel_values)
        embeds, mask = self.base.projector(grid)
        return ImageFeatures(grid.float(), embeds, mask)

    @staticmethod
    def safety_query_text(prompt: str, reader_text: str | None = None) -> str:
        """What the safety head reads: the prompt and the text found in the image."""
        return f"{reader_text}\n{prompt}" if reader_text else prompt

    @torch.no_grad()
    def get_safety_queries(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Query features (B, T, D) and mask (B, T) for the safety head, from the frozen
        LLM with any LoRA adapter switched off, so stage 2 never shifts the head's inputs."""
        tok = self.base.tokenizer
        enc = tok(texts, return_tensors="pt", padding=True, truncation=True,
                  max_length=MAX_QUERY_TOKENS, add_special_tokens=False)
        ids = enc["input_ids"].to(self.base.device)
        mask = enc["attention_mask"].to(self.base.device).bool()
        if ids.shape[1] == 0:  # every text empty: one padding position, masked out
            ids = torch.full((len(texts), 1), tok.pad_token_id, device=self.base.device)
            mask = torch.zeros_like(ids, dtype=torch.bool)
        source = self.config.query_source
        if source == "hidden":
            with self._adapters_disabled():
                out = self._query_encoder()(input_ids=ids, attention_mask=mask.long(),
                                            output_hidden_states=True, use_cache=False)
            queries = out.hidden_states[self.config.query_layer]
        else:
            queries = self.base.embed_tokens(ids)
        if source == "paper":  # the authors' head read attn_output[0]: the first position only
            mask = torch.zeros_like(mask)
            mask[:, 0] = True
        return queries.float(), mask

    def _query_encoder(self) -> nn.Module:
        """The LLM's decoder cut after the query layer: the head reads hidden state
        `query_layer`, and the layers above it cannot change it (causal, no cache), so
        skipping them gives the same queries for a third less work at layer 20 of 30. The
        cut model shares every layer (and any LoRA inside them) with the full one. It keeps
        one layer more than needed: the last hidden state it returns has the final norm
        applied, and the head's layer must come out unnormed."""
        text_model = self.base.text_model
        layers = getattr(text_model, "layers", None)
        keep = self.config.query_layer + 1
        if not isinstance(layers, nn.ModuleList) or keep >= len(layers):
            return text_model
        cached = getattr(self, "_cut_encoder", None)
        if cached is None or cached[0] is not text_model or cached[1] != keep:
            cut = copy.copy(text_model)
            cut._modules = dict(text_model._modules)  # copy.copy shares it; the cut gets its own
            cut.layers = nn.ModuleList(list(layers[:keep]))
            object.__setattr__(self, "_cut_encoder", (text_model, keep, cut))  # not a submodule
            cached = self._cut_encoder
        return cached[2]

    @property
    def members(self) -> list[SafetyMember]:
        """The ensemble's classifiers; the first is this model's own projector, tokens set 1
        and head (a view, so checkpoint keys stay those of the single-head model)."""
        first = SafetyMember(self.safety_projector, self.safety_tokens_head, self.safety_head)
        return [first, *getattr(self, "safety_ensemble", [])]

    def classify_safety(self, image: ImageFeatures, queries: torch.Tensor,
                        query_mask: torch.Tensor, member: int | None = None) -> SafetyOutput:
        """Safety head over [safety tokens set 1; safety projector(F)] (gradients reach only
        the safety modules). With an ensemble, the logits are the log of the members' mean
        probabilities (`member=i`: that member alone, as it is trained, unscaled); the whole
        model's logits are divided by the config's fitted temperatures."""
        args = (image.grid.to(self.device), queries.to(self.device), query_mask.to(self.device))
        if member is not None:
            return SafetyOutput(*self.members[member](*args))
        members = self.members
        if len(members) == 1:
            type_logits, level_logits = members[0](*args)
        else:
            outputs = [m(*args) for m in members]
            type_logits, level_logits = (
                torch.stack([out[i].log_softmax(-1) for out in outputs]).logsumexp(0) - math.log(len(outputs))
                for i in (0, 1)
            )
        return SafetyOutput(type_logits / self.config.type_temperature,
                            level_logits / self.config.level_temperature)

    def forward(self, grid: torch.Tensor, queries: torch.Tensor, query_mask: torch.Tensor,
                type_labels: torch.Tensor | None = None, level_labels: torch.Tensor | None = None,
                member: int | None = None, label_smoothing: float = 0.0) -> SafeVLMOutput:
        """The safety head on a batch of vision grids (B, C, h, w) and query features
        (B, T, D) with their mask; with labels, the safety loss of the paper (weighted by
        the config's `safety_loss_weight`). `member` as in `classify_safety`."""
        out = self.classify_safety(ImageFeatures(grid, None, None), queries, query_mask, member=member)
        if type_labels is None or level_labels is None:
            return SafeVLMOutput(out.type_logits, out.level_logits)
        ce_type = F.cross_entropy(out.type_logits, type_labels.to(self.device), label_smoothing=label_smoothing)
        ce_level = F.cross_entropy(out.level_logits, level_labels.to(self.device), label_smoothing=label_smoothing)
        loss = self.config.safety_loss_weight * (ce_type + ce_level)
        return SafeVLMOutput(out.type_logits, out.level_logits, loss, ce_type.detach(), ce_level.detach())

    def lm_loss(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:
        """Next-token loss of the base LLM (with its adapter, if any) on labelled positions:
        mixed precision on a GPU, fp32 on a CPU (a CPU without native bf16 runs the bf16
        backward ~50x slower: 41 s against 0.7 s for 2x64 tokens here)."""
        device = self.base.device
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            out = self.base.lm(inputs_embeds=inputs_embeds.to(device), attention_mask=attention_mask.to(device),
                               labels=labels.to(device), use_cache=False)
        return out.loss.float()

    # ------------------------------------------------------------------ LLM input

    def build_inputs(self, image: ImageFeatures | None, messages: list[dict], *,
                     reader_text: str | None = None, hint: str | None = None,
                     safety_tokens: bool = False, target: str | None = None) -> BuiltInputs:
        """LLM input embeddings for one conversation. `messages` alternate user/assistant and
        end with the user turn being answered; the image, reader text and safety tokens go
        into the first user turn, the hint into the last. With `target`, the answer is
        appended and `labels` mark it (the training loss)."""
        fmt = self.base.chat_format
        slot = "image" if image is not None else ("tokens" if safety_tokens else None)
        turns = []
        last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
        for i, m in enumerate(messages):
            content = m["content"]
            if m["role"] == "user":
                content = fmt.user_content(content, slot=slot if i == 0 else None,
                                           reader_text=reader_text if i == 0 else None,
                                           hint=hint if i == last_user else None)
            turns.append({"role": m["role"], "content": content})
        text = fmt.render(turns)
        if slot and text.count(IMAGE_PLACEHOLDER) != 1:
            raise ValueError("the chat format must keep exactly one image placeholder")
        prefix, _, suffix = text.partition(IMAGE_PLACEHOLDER)
        pieces = [self._embed_text(prefix)]
        if safety_tokens:
            pieces.append(self.safety_tokens_llm(1)[0].to(self.base.dtype))
        if image is not None:
            pieces.append(image.embeds[0][image.embeds_mask[0]].to(self.base.dtype))
        if slot:
            pieces.append(self._embed_text(suffix))
        prompt_embeds = torch.cat(pieces, dim=0)
        if target is None:
            return BuiltInputs(prompt_embeds, None)
        target_ids = self._token_ids(target + fmt.end_of_turn)
        embeds = torch.cat([prompt_embeds, self.base.embed_tokens(target_ids)], dim=0)
        labels = torch.cat([torch.full((prompt_embeds.shape[0],), -100, device=target_ids.device),
                            target_ids])
        return BuiltInputs(embeds, labels)

    def _token_ids(self, text: str) -> torch.Tensor:
        ids = self.base.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
        return ids.to(self.base.device)

    def _embed_text(self, text: str) -> torch.Tensor:
        return self.base.embed_tokens(self._token_ids(text))

    # ------------------------------------------------------------------ generation

    @contextlib.contextmanager
    def _adapters_disabled(self):
        lm = self.base.lm
        if hasattr(lm, "disable_adapter") and getattr(lm, "peft_config", None):
            with lm.disable_adapter():
                yield
        else:
            yield

    def generate_stream(self, built: BuiltInputs, settings: GenerationSettings | None = None,
                        stop_event: threading.Event | None = None,
                        use_adapter: bool = True) -> Iterator[str]:
        """Yield text chunks as the LLM decodes; setting `stop_event` ends it early."""
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        settings = settings or GenerationSettings()
        stop_event = stop_event or threading.Event()
        tok = self.base.tokenizer
        streamer = TextIteratorStreamer(tok, skip_special_tokens=True, timeout=600)
        embeds = built.inputs_embeds.unsqueeze(0)
        kwargs = dict(
            inputs_embeds=embeds,
            attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device),
            max_new_tokens=settings.max_new_tokens,
            do_sample=settings.temperature > 0,
            repetition_penalty=settings.repetition_penalty,
            eos_token_id=self.base.eos_token_ids,
            pad_token_id=tok.pad_token_id,
            streamer=streamer,
            stopping_criteria=StoppingCriteriaList([_StopOnEvent(stop_event)]),
        )
        if settings.temperature > 0:
            kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with torch.no_grad(), (contextlib.nullcontext() if use_adapter
                                       else self._adapters_disabled()):
                    self.base.lm.generate(**kwargs)
            except BaseException as e:  # surfaced in the caller's thread below
                errors.append(e)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            yield from streamer
        finally:
            stop_event.set()
            thread.join()
        if errors:
            raise errors[0]

    # ------------------------------------------------------------------ save / load

    def save_safety_modules(self, directory: str | Path, metadata: dict | None = None) -> Path:
        """Write the trained safety modules only (safetensors) and their config (JSON)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = self.config.override(base=self.base.name)
        config.to_json(directory / CONFIG_FILE)
        meta = {"base_id": self.base.id, **{k: str(v) for k, v in (metadata or {}).items()}}
        write_weights(self.state_dict(), directory / WEIGHTS_FILE, meta)
        return directory

    @classmethod
    def from_pretrained(cls, base: Base, directory: str | Path, load_adapter: bool = True) -> SafeVLM:
        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        if not config_path.exists() or not weights_path.exists():
            raise CheckpointError(
                f"{directory} is not a SafeVLM checkpoint: expected {CONFIG_FILE} and {WEIGHTS_FILE}"
            )
        try:
            config = SafeVLMConfig.from_json(config_path)
        except (ValueError, TypeError, TaxonomyError) as e:
            raise CheckpointError(f"{config_path}: unreadable config ({e})") from None
        try:
            model = cls(base, config)
        except (ValueError, AssertionError, RuntimeError) as e:
            raise CheckpointError(f"{config_path}: the config does not fit this base ({one_line(e)})") from None
        try:
            state = read_weights(weights_path)
        except CheckpointError:
            raise
        except Exception as e:  # a damaged int8 matrix or scale
            raise CheckpointError(f"{weights_path}: corrupt or unreadable weights ({one_line(e)})") from None
        try:
            model.load_state_dict({k: v.to(model.device) for k, v in state.items()})
        except RuntimeError as e:
            raise CheckpointError(
                f"{weights_path} does not fit the modules built from its config: {one_line(e)}"
            ) from None
        adapter = directory / ADAPTER_DIR
        if load_adapter and (adapter / "adapter_config.json").exists():
            from peft import PeftModel

            try:
                base.lm = PeftModel.from_pretrained(base.lm, str(adapter))
            except Exception as e:  # peft raises JSON, safetensors, key and shape errors
                raise CheckpointError(f"{adapter}: unreadable LoRA adapter ({one_line(e)})") from None
            base.lm.eval()
            log.info("loaded LoRA adapter from %s", adapter)
        return model.eval()

    def describe(self) -> dict:
        """A JSON-able summary for logs, the About panel and the model card."""
        cfg = asdict(self.config)
        cfg.pop("taxonomy")
        params = sum(p.numel() for p in self.parameters())
        return {"base": self.base.id, "config": cfg, "taxonomy": self.taxonomy.name,
                "safety_parameters": params,
                "adapter": bool(getattr(self.base.lm, "peft_config", None))}
