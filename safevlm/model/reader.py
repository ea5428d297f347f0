"""The reader: text found in an image (RapidOCR with the PP-OCR models its wheel ships),
so typographic requests reach the safety head and the LLM.

Owns OCR only; results are cached by the caller (the chat engine) by image hash.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

MAX_SIDE = 960  # OCR cost grows with pixels; 960 px keeps signs and documents readable
DET_MAX_SIDE = 640  # the text detector's input, longest side


def _new_engine(threads: int = -1):
    from rapidocr import RapidOCR

    # The angle classifier costs ~30% and the inputs we care about are upright.
    # RapidOCR's detector defaults to upscaling every image until its SHORT side is
    # 736 px; capping the LONG side at 640 instead is ~2.5x faster and reads our
    # typographic inputs as well or better.
    return RapidOCR(params={
        "Global.use_cls": False, "Global.log_level": "error", "Global.max_side_len": MAX_SIDE,
        "Det.limit_type": "max", "Det.limit_side_len": DET_MAX_SIDE,
        "EngineConfig.onnxruntime.intra_op_num_threads": threads,
    })


class Reader:
    """`read` serves one image at a time on one OCR session that uses every core (lowest
    latency: the chat). `read_many` serves a batch on `workers` sessions of one thread each,
    side by side (highest throughput: the scan; the models are small, so one session
    cannot keep two cores busy)."""

    def __init__(self, min_score: float = 0.5, max_chars: int = 1000, workers: int | None = None):
        self.min_score = min_score
        self.max_chars = max_chars
        self.workers = max(1, workers if workers is not None else min(os.cpu_count() or 1, 4))
        self._engine = None
        self._lock = threading.Lock()
        self._pool: queue.Queue | None = None
        self._pool_lock = threading.Lock()

    def _get_engine(self):
        if self._engine is None:
            self._engine = _new_engine()
        return self._engine

    def _get_pool(self) -> queue.Queue:
        with self._pool_lock:
            if self._pool is None:
                pool = queue.Queue()
                for _ in range(self.workers):
                    pool.put(_new_engine(threads=1))
                self._pool = pool
        return self._pool

    def warm_up(self) -> None:
        """Load every OCR session now (the single one and the parallel ones), so that the
        first image read does not pay for loading models."""
        blank = Image.new("RGB", (32, 32), "white")
        self.read(blank)
        self.read_many([blank] * self.workers)

    def read(self, image: Image.Image) -> str:
        """The text in the image, lines joined by newlines ('' when there is none)."""
        img = _prepare(image)
        if img is None:
            return ""
        with self._lock:  # onnxruntime sessions are shared; one image at a time
            result = self._get_engine()(np.asarray(img)[:, :, ::-1])
        return self._text(result)

    def read_many(self, images: Sequence[Image.Image]) -> list[str]:
        """`read` for each image, in order, on the worker sessions in parallel."""
        if self.workers == 1 or len(images) < 2:
            return [self.read(image) for image in images]
        pool = self._get_pool()

        def one(image):
            img = _prepare(image)
            if img is None:
                return ""
            engine = pool.get()
            try:
                return self._text(engine(np.asarray(img)[:, :, ::-1]))
            finally:
                pool.put(engine)

        with ThreadPoolExecutor(self.workers, thread_name_prefix="reader") as ex:
            return list(ex.map(one, images))

    def _text(self, result) -> str:
        texts = result.txts or ()
        scores = result.scores or ()
        lines = [t.strip() for t, s in zip(texts, scores, strict=False) if s >= self.min_score and t.strip()]
        text = "\n".join(lines)[: self.max_chars]
        # Stray single glyphs (a "0" read off fur or foliage) are noise, not text.
        return text if sum(ch.isalnum() for ch in text) >= 3 else ""


def _prepare(image: Image.Image) -> Image.Image | None:
    """RGB, longest side at most MAX_SIDE; None when too small to hold text."""
    img = image.convert("RGB")
    if max(img.size) > MAX_SIDE:
        img = img.copy()
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BILINEAR)
    return None if min(img.size) < 8 else img
