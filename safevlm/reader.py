"""The reader: text found in an image (RapidOCR with the PP-OCR models its wheel ships),
so typographic requests reach the safety head and the LLM.

Owns OCR only; results are cached by the caller (the chat engine) by image hash.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

MAX_SIDE = 960  # OCR cost grows with pixels; 960 px keeps signs and documents readable
DET_MAX_SIDE = 640  # the text detector's input, longest side


class Reader:
    def __init__(self, min_score: float = 0.5, max_chars: int = 1000):
        self.min_score = min_score
        self.max_chars = max_chars
        self._engine = None
        self._lock = threading.Lock()

    def _get_engine(self):
        if self._engine is None:
            from rapidocr import RapidOCR

            # The angle classifier costs ~30% and the inputs we care about are upright.
            # RapidOCR's detector defaults to upscaling every image until its SHORT side is
            # 736 px; capping the LONG side at 640 instead is ~2.5x faster and reads our
            # typographic inputs as well or better.
            self._engine = RapidOCR(params={
                "Global.use_cls": False, "Global.log_level": "error", "Global.max_side_len": MAX_SIDE,
                "Det.limit_type": "max", "Det.limit_side_len": DET_MAX_SIDE,
            })
        return self._engine

    def read(self, image: Image.Image) -> str:
        """The text in the image, lines joined by newlines ('' when there is none)."""
        img = image.convert("RGB")
        if max(img.size) > MAX_SIDE:
            img = img.copy()
            img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BILINEAR)
        if min(img.size) < 8:
            return ""
        with self._lock:  # onnxruntime sessions are shared; one image at a time
            result = self._get_engine()(np.asarray(img)[:, :, ::-1])
        texts = result.txts or ()
        scores = result.scores or ()
        lines = [t.strip() for t, s in zip(texts, scores, strict=False) if s >= self.min_score and t.strip()]
        text = "\n".join(lines)[: self.max_chars]
        # Stray single glyphs (a "0" read off fur or foliage) are noise, not text.
        return text if sum(ch.isalnum() for ch in text) >= 3 else ""
