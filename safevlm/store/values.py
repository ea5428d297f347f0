"""The values a row may hold and how they are stored: allowed names, integer checks, JSON
columns and timestamps. Plain functions raising StoreError; no SQL, no files.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from safevlm.store.errors import StoreError

CLIENTS = ("ui", "api", "cli")  # also the allowed `source` of a turn
DECISIONS = ("allow", "caution", "refuse")
STATUSES = ("complete", "stopped", "error")
JSON_TURN_COLUMNS = ("type_probs", "level_probs", "thresholds", "timings")


def now() -> str:
    return iso(datetime.now(UTC))


def iso(moment: datetime) -> str:
    """How every `created` column stores a moment: ISO 8601 in UTC, milliseconds, 'Z'."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_choice(value: Any, allowed: Sequence[str], name: str) -> None:
    if value not in allowed:
        raise StoreError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def to_json(value: Any, name: str) -> str | None:
    if value is None:
        return None
    try:
        return json.dumps(value, default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise StoreError(
            f"{name} must be plain JSON values (dict/list/str/number): {error}"
        ) from None


def _json_default(value: Any) -> Any:
    # numpy and torch scalars/arrays both offer tolist(); dataclasses (policy.Thresholds) asdict.
    if hasattr(value, "tolist"):
        return value.tolist()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
