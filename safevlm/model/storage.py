"""How the safety modules sit on disk, and the error for a checkpoint that cannot be loaded.

The weight matrices (linear and convolution weights) are stored as int8 with one fp32 scale
per output row (symmetric, absmax / 127): a quarter of fp32, half of fp16, which keeps a
three-member ensemble near 11 MB. Everything else (biases, norms, safety tokens) is fp16.
The error per weight is at most half a step, absmax / 254 of its row.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from safevlm.errors import SafeVLMError, one_line


class CheckpointError(SafeVLMError, RuntimeError):
    """A checkpoint that cannot be loaded onto this base; the message says what to pass."""


SCALE_SUFFIX = "@int8_scale"


def _quantized(key: str, tensor: torch.Tensor) -> bool:
    return key.endswith("weight") and tensor.dim() >= 2


def write_weights(state: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    out = {}
    for key, tensor in state.items():
        tensor = tensor.detach().float().cpu()
        if _quantized(key, tensor):
            rows = tensor.reshape(tensor.shape[0], -1)
            scale = rows.abs().amax(1).clamp_min(1e-12) / 127
            out[key] = (rows / scale[:, None]).round().clamp(-127, 127).to(torch.int8).reshape(tensor.shape)
            out[key + SCALE_SUFFIX] = scale
        else:
            out[key] = tensor.half()
    save_file({k: v.contiguous() for k, v in out.items()}, str(path),
              metadata={**metadata, "weights": "int8 per-row matrices, fp16 rest"})


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The fp32 state written by `write_weights`; older all-fp16 files load too."""
    try:
        stored = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{path}: corrupt or unreadable weights ({one_line(e)})") from None
    state = {}
    for key, tensor in stored.items():
        if key.endswith(SCALE_SUFFIX):
            continue
        scale = stored.get(key + SCALE_SUFFIX)
        if tensor.dtype == torch.int8:
            if scale is None or scale.shape != tensor.shape[:1]:
                raise CheckpointError(f"{path}: {key} is int8 without a scale per row; the file is damaged")
            tensor = tensor.float() * scale.float().reshape(-1, *[1] * (tensor.dim() - 1))
        state[key] = tensor.float()
    return state
