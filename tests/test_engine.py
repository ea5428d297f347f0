"""The real offline default end to end: base recognition, classify, streamed chat."""

import threading

import pytest
from PIL import Image

from safevlm.engine import PromptError, clean_prompt
from safevlm.model.modeling import GenerationSettings

SHORT = GenerationSettings(max_new_tokens=12)


def test_the_tiny_base_names_the_main_object_of_real_photos(tiny_engine, tmp_path):
    from skimage import data

    photos = {"chelsea": (data.chelsea(), "cat"), "coffee": (data.coffee(), "coffee"),
              "rocket": (data.rocket(), "rocket"), "motorcycle": (data.stereo_motorcycle()[0], "motorcycle"),
              "astronaut": (data.astronaut(), "person")}
    named = 0
    for name, (pixels, word) in photos.items():
        path = tmp_path / f"{name}.png"
        Image.fromarray(pixels).save(path)
        answer = tiny_engine.chat(path, "What is in this image? Answer in a few words.",
                                  mode="off", settings=GenerationSettings(max_new_tokens=24)).text
        named += word in answer.lower()
    assert named >= 4


def test_the_first_update_carries_the_verdict_before_any_text(tiny_engine, photo_path):
    updates = list(tiny_engine.stream(photo_path, "What animal is this?", settings=SHORT))
    first, last = updates[0], updates[-1]
    assert first.text == "" and not first.done
    assert abs(sum(first.verdict.type_probs.values()) - 1) < 1e-4
    assert last.done and last.text and last.timings["first_token"] > 0
    assert last.timings["total"] >= last.timings["first_token"]


def test_vision_and_reader_run_once_per_image(tiny_engine, text_image_path):
    first = tiny_engine.classify(text_image_path, "What does it say?")
    again = tiny_engine.classify(text_image_path, "Something else?")
    assert "bake bread" in first.reader_text.lower()
    assert again.ms["vision"] == 0.0 and again.ms["reader"] == 0.0


def test_prepare_many_gives_what_prepare_gives_image_by_image(tiny_engine, text_image_path, photo_path):
    import torch

    from safevlm.images import load_image

    def fresh(path, n):  # a pixel changed: new to every cache
        image = Image.open(path).convert("RGB")
        image.putpixel((0, 0), (n, 3, 5))
        return load_image(image)

    text, photo = fresh(text_image_path, 11), fresh(photo_path, 12)
    batch = tiny_engine.prepare_many([text, photo, text])
    assert batch[0] is batch[2] and len(batch) == 3
    assert "bake bread" in batch[0].reader_text.lower() and batch[0].ms["reader"] > 0
    for loaded, prepared in zip((text, photo), batch, strict=False):
        pixels = tiny_engine.model.base.image_transform(loaded.image).unsqueeze(0)
        with torch.no_grad():
            alone = tiny_engine.model.get_image_features(pixels)
        assert torch.allclose(prepared.features.grid, alone.grid, atol=1e-4)
        assert prepared.reader_text == tiny_engine.reader.read(loaded.image)
    assert tiny_engine.prepare(photo) is batch[1]  # cached for the single path too


def test_parallel_reader_sessions_read_each_image_in_order(text_image_path, photo_path):
    from PIL import ImageDraw, ImageFont

    from safevlm.model.reader import Reader

    sign = Image.new("RGB", (420, 120), "white")
    ImageDraw.Draw(sign).text((20, 30), "Repot the cactus in May.", fill="black",
                              font=ImageFont.load_default(28))
    images = [Image.open(text_image_path), Image.open(photo_path), sign, Image.new("RGB", (4, 4))]
    reader = Reader(workers=2)
    texts = reader.read_many(images)
    assert texts == [reader.read(image) for image in images]
    assert "bread" in texts[0].lower() and "cactus" in texts[2].lower() and texts[3] == ""


def test_reader_text_reaches_the_answer(tiny_engine, text_image_path):
    answer = tiny_engine.chat(text_image_path, "What is written in the image?", mode="off",
                              settings=GenerationSettings(max_new_tokens=30)).text.lower()
    assert "bread" in answer


def test_thresholds_at_zero_flag_every_input(tiny_engine, photo_path):
    zero = {t: 0.0 for t in tiny_engine.taxonomy.risk_types} | {"level": 0.0}
    verdict = tiny_engine.classify(photo_path, "What is this?", thresholds=tiny_engine.thresholds(zero))
    assert verdict.decision.flagged and verdict.decision.hint


def test_the_engine_takes_parsed_thresholds_only(tiny_engine, photo_path):
    with pytest.raises(TypeError, match="engine.thresholds"):
        tiny_engine.classify(photo_path, "What is this?", thresholds={"level": 0.0})


def test_off_mode_and_allowed_inputs_get_the_base_models_answer(tiny_engine, photo_path):
    zero = tiny_engine.thresholds({t: 0.0 for t in tiny_engine.taxonomy.risk_types} | {"level": 0.0})
    never = tiny_engine.thresholds({t: 1.0 for t in tiny_engine.taxonomy.risk_types})
    off = tiny_engine.chat(photo_path, "What is this?", mode="off", thresholds=zero, settings=SHORT)
    allowed = tiny_engine.chat(photo_path, "What is this?", mode="both", thresholds=never, settings=SHORT)
    hinted = tiny_engine.chat(photo_path, "What is this?", mode="hint", thresholds=zero, settings=SHORT)
    assert not off.conditioned and not allowed.conditioned and hinted.conditioned
    assert off.text == allowed.text


def test_multi_turn_history_is_used(tiny_engine, photo_path):
    out = tiny_engine.chat(photo_path, "What did I just ask you?", mode="off",
                           history=[("What is in this image?", "A cat.")], settings=SHORT)
    assert out.done and out.text


def test_stop_event_ends_generation_early(tiny_engine, photo_path):
    stop = threading.Event()
    texts = []
    for update in tiny_engine.stream(photo_path, "Tell me a long story about this cat.", mode="off",
                                     stop_event=stop, settings=GenerationSettings(max_new_tokens=200)):
        texts.append(update.text)
        if len(texts) == 3:
            stop.set()
    assert len(texts) < 20


def test_text_only_turns_work_without_an_image(tiny_engine):
    out = tiny_engine.chat(None, "What is the capital of France?", mode="off", settings=SHORT)
    assert "paris" in out.text.lower()


@pytest.mark.parametrize("prompt, message", [("", "empty"), ("   \n\t", "empty"), ("x" * 5000, "limit")])
def test_unusable_prompts_are_refused_with_a_reason(prompt, message):
    with pytest.raises(PromptError, match=message):
        clean_prompt(prompt)


def test_control_characters_are_removed_and_mixed_scripts_kept():
    assert clean_prompt("Hi\x00\x07 there\u200b — Привет 你好") == "Hi there — Привет 你好"


def test_bad_mode_is_rejected(tiny_engine, photo_path):
    with pytest.raises(ValueError, match="mode must be one of"):
        list(tiny_engine.stream(photo_path, "Hi", mode="loud"))


def test_a_stream_can_be_resumed_from_other_threads(tiny_engine, photo_path):
    """Gradio resumes a sync generator on whichever worker thread is free."""
    from concurrent.futures import ThreadPoolExecutor

    stream = tiny_engine.stream(photo_path, "What is this?", mode="off", settings=SHORT)
    updates = []
    threads = [ThreadPoolExecutor(max_workers=1), ThreadPoolExecutor(max_workers=1)]
    try:
        while True:  # every step on the other thread than the one before
            update = threads[len(updates) % 2].submit(next, stream, None).result(timeout=60)
            if update is None:
                break
            updates.append(update)
    finally:
        for pool in threads:
            pool.shutdown()
    assert updates[-1].done
    again = tiny_engine.chat(photo_path, "And now?", mode="off", settings=SHORT)  # not deadlocked
    assert again.done


def test_a_flagged_input_answered_by_template_streams_the_refusal_and_never_generates(
        tiny_engine, photo_path, monkeypatch):
    zero = {t: 0.0 for t in tiny_engine.taxonomy.risk_types} | {"level": 0.0}
    calls = []
    real = tiny_engine.model.generate_stream

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(tiny_engine.model, "generate_stream", spy)
    template = zero | {"responses": "template"}
    updates = list(tiny_engine.stream(photo_path, "What is this?", mode="hint",
                                      thresholds=tiny_engine.thresholds(template)))
    final = updates[-1]
    decision = final.verdict.decision
    assert final.done and final.conditioned and not calls
    assert final.text == tiny_engine.taxonomy.refusal(decision.type) == decision.refusal
    assert len(updates) > 4 and updates[1].text and len(updates[1].text) < len(final.text)  # streamed
    assert final.to_dict()["respond_with"] == "template"
    generated = tiny_engine.chat(photo_path, "What is this?", mode="hint", settings=SHORT,
                                 thresholds=tiny_engine.thresholds(zero | {"responses": "generate"}))
    off = tiny_engine.chat(photo_path, "What is this?", mode="off", settings=SHORT,
                           thresholds=tiny_engine.thresholds(template))
    assert len(calls) == 2  # 'generate' and mode 'off' both run the model
    assert generated.to_dict()["respond_with"] == "generate" and off.text != decision.refusal
