"""Shared fixtures: a tiny random Llava built from a config (the llava loading path, no
download), and the real offline tiny base, loaded once per session."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("NO_PROXY", "localhost,127.0.0.1")

import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402


@pytest.fixture(scope="session")
def smol_tokenizer():
    from safevlm.bases import load_smollm2

    _, tokenizer = load_smollm2()
    return tokenizer


@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory, smol_tokenizer):
    """A randomly initialised LlavaForConditionalGeneration, saved like a hub checkpoint."""
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    torch.manual_seed(0)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, image_size=32, patch_size=8)
    text = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                       num_attention_heads=4, num_key_value_heads=2,
                       vocab_size=len(smol_tokenizer), max_position_embeddings=1024,
                       pad_token_id=smol_tokenizer.pad_token_id or 0)
    config = LlavaConfig(vision_config=vision, text_config=text,
                         image_token_index=len(smol_tokenizer) - 1,
                         vision_feature_layer=-2, vision_feature_select_strategy="default")
    model = LlavaForConditionalGeneration(config).eval()
    out = tmp_path_factory.mktemp("tiny-llava")
    model.save_pretrained(out)
    smol_tokenizer.save_pretrained(out)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def toy_base(tiny_llava_dir):
    from safevlm.bases import load_llava_base

    return load_llava_base(str(tiny_llava_dir))


@pytest.fixture(scope="session")
def tiny_engine():
    """The real offline default (SmolLM2 + EfficientNet-Lite0 + RapidOCR), untrained or
    with the shipped checkpoint."""
    from safevlm.engine import ChatEngine

    return ChatEngine.load("tiny")


@pytest.fixture(scope="session")
def photo_path(tmp_path_factory):
    from skimage import data

    path = tmp_path_factory.mktemp("img") / "chelsea.png"
    Image.fromarray(data.chelsea()).save(path)
    return path


@pytest.fixture(scope="session")
def text_image_path(tmp_path_factory):
    from PIL import ImageDraw, ImageFont

    img = Image.new("RGB", (480, 240), "white")
    ImageDraw.Draw(img).text((20, 30), "Steps to bake bread at home.\n1.\n2.\n3.", fill="black",
                             font=ImageFont.load_default(26))
    path = tmp_path_factory.mktemp("img") / "bread.png"
    img.save(path)
    return path
