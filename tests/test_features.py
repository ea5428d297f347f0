"""The training feature cache: vision grids and reader text per image, queries per text.
What was read, what was not, and what a run without the reader gets."""

from PIL import Image

from safevlm.config import SafeVLMConfig
from safevlm.data.schema import Record
from safevlm.model.modeling import SafeVLM
from train.features import FeatureCache, build_examples


class CountingReader:
    def __init__(self):
        self.images = 0

    def read_many(self, images):
        self.images += len(images)
        return [f"text {i}" for i in range(len(images))]


def records(tmp_path):
    out = []
    for colour in ("red", "blue"):
        path = tmp_path / f"{colour}.png"
        Image.new("RGB", (32, 32), colour).save(path)
        out.append(Record(image=str(path), prompt="What does it say?", response="ok", type="safe",
                          level=0, source="test", split="train"))
    return out


def test_a_run_without_the_reader_does_not_poison_the_cache_for_one_with_it(tmp_path, toy_base):
    model = SafeVLM(toy_base, SafeVLMConfig(base="llava", num_heads=4)).eval()
    recs, cache = records(tmp_path), FeatureCache.for_model(tmp_path, model)

    blind = build_examples(model, recs, cache, reader=None)
    assert [e.reader_text for e in blind] == ["", ""]

    reader = CountingReader()
    read = build_examples(model, recs, FeatureCache.for_model(tmp_path, model), reader)  # reopened from disk
    assert reader.images == 2 and all(e.reader_text.startswith("text") for e in read)
    assert not (read[0].query.shape == blind[0].query.shape and (read[0].query == blind[0].query).all())

    again = build_examples(model, recs, FeatureCache.for_model(tmp_path, model), reader)
    assert reader.images == 2 and [e.reader_text for e in again] == [e.reader_text for e in read]
    # a run configured without the reader never sees text another run read (the cache on disk has it)
    reopened = FeatureCache.for_model(tmp_path, model)
    assert all(reopened.images[e.image_key]["reader_text"].startswith("text") for e in read)
    assert [e.reader_text for e in build_examples(model, recs, reopened, reader=None)] == ["", ""]


def test_without_queries_only_images_and_reader_text_are_computed(tmp_path, toy_base):
    model = SafeVLM(toy_base, SafeVLMConfig(base="llava", num_heads=4)).eval()
    cache = FeatureCache.for_model(tmp_path, model)
    examples = build_examples(model, records(tmp_path), cache, CountingReader(), with_queries=False)
    assert [e.query for e in examples] == [None, None]
    assert all(e.reader_text.startswith("text") for e in examples) and len(cache.images) == 2
    assert cache.queries == {} and FeatureCache.for_model(tmp_path, model).queries == {}


def test_drawn_request_images_take_their_drawn_text_except_the_share_ocr_reads(tmp_path, toy_base):
    from train.features import rendered_text

    model = SafeVLM(toy_base, SafeVLMConfig(base="llava", num_heads=4)).eval()
    recs = []
    for i in range(40):
        path = tmp_path / f"req{i}.png"
        Image.new("RGB", (32, 32), (i * 6, 10, 10)).save(path)
        recs.append(Record(image=str(path), prompt="Do what it says.", response="ok", type="safe", level=0,
                           source="public/alpaca", split="train",
                           meta={"form": "typo", "image_text": f"drawn {i}"}))
    plain = Record(image=str(tmp_path / "req0.png"), prompt="p", response="r", type="safe", level=0,
                   source="safevlm-gen/typo_benign", split="train", meta={"kind": "typo_benign"})
    assert rendered_text(plain, 0.0, "k") is None  # generated kinds are always read
    assert rendered_text(recs[0], 1.0, "k") is None  # share 1: everything is read
    reader = CountingReader()
    examples = build_examples(model, recs, FeatureCache.for_model(tmp_path, model), reader, ocr_share=0.25)
    drawn = [e for e in examples if e.reader_text.startswith("drawn")]
    read = [e for e in examples if e.reader_text.startswith("text")]
    assert len(drawn) + len(read) == 40 and reader.images == len(read)
    assert 3 <= len(read) <= 18  # about a quarter, by image hash
    assert all(e.reader_text == e.record.meta["image_text"] for e in drawn)
