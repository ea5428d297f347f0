"""Which checkpoint the app runs (`EngineSlot`): the engine every part of the app reads at
each call, with the policy file's thresholds applied (`use_policy`); and, when
SAFEVLM_CHECKPOINT names a checkpoint registry (`safevlm.registry`), the switch to a newly
promoted checkpoint without a restart: each turn and each page load ask `refresh()`, which
loads the promoted checkpoint when it changed and swaps it in. A checkpoint that fails to
load is logged once and the app keeps the one it runs."""

import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from app.settings import AppSettings
from safevlm.engine import ChatEngine
from safevlm.errors import SafeVLMError
from safevlm.policy import ThresholdError, load_policy
from safevlm.registry import Registry, RegistryError

log = logging.getLogger(__name__)


def use_policy(engine: ChatEngine, settings: AppSettings) -> None:
    """Start new sessions from SAFEVLM_POLICY's thresholds (a file `safevlm feedback
    thresholds --out` wrote); exits with one line when the file cannot be used."""
    if not settings.policy:
        return
    try:
        engine.use_policy(load_policy(settings.policy, engine.taxonomy))
    except ThresholdError as error:
        sys.exit(f"safevlm app: SAFEVLM_POLICY: {error}")
    log.info("default thresholds from the policy file %s", settings.policy)


class EngineSlot:
    """The engine in use; `refresh()` follows the registry's promoted checkpoint."""

    def __init__(self, engine: ChatEngine, registry: Registry | None = None,
                 load: Callable[[Path], ChatEngine] | None = None):
        self.engine = engine
        self.registry = registry
        if registry is not None and load is None:
            raise ValueError("following a registry needs `load`, which makes an engine from a checkpoint folder")
        self._load = load
        self._lock = threading.Lock()
        self._failed: str | None = None

    @classmethod
    def wrap(cls, engine: "ChatEngine | EngineSlot") -> "EngineSlot":
        return engine if isinstance(engine, EngineSlot) else cls(engine)

    @classmethod
    def for_settings(cls, engine: ChatEngine, settings: AppSettings) -> "EngineSlot":
        """Follow SAFEVLM_CHECKPOINT when it names a registry; apply the policy to each engine."""
        folder = settings.checkpoint
        registry = Registry(folder) if folder and Registry.is_registry(folder) else None

        def load(path: Path) -> ChatEngine:
            new = ChatEngine.load(settings.base, path)
            if settings.policy:  # a bad file raises here: the switch is skipped, the app runs on
                new.use_policy(load_policy(settings.policy, new.taxonomy))
            return new

        return cls(engine, registry, load)

    def refresh(self) -> bool:
        """Load and use the registry's promoted checkpoint if it is not the one in use;
        True when the engine changed."""
        if self.registry is None:
            return False
        try:
            promoted = self.registry.promoted_id()
        except RegistryError as error:
            log.warning("checkpoint registry: %s", error)
            return False
        if promoted is None or promoted in (self.engine.checkpoint_id, self._failed):
            return False
        with self._lock:
            if promoted == self.engine.checkpoint_id:
                return False
            try:
                new = self._load(self.registry.path(promoted))
            except (SafeVLMError, OSError) as error:
                log.warning("could not switch to the promoted checkpoint %s: %s", promoted, error)
                self._failed = promoted
                return False
            log.info("switched to the promoted checkpoint %s (was %s)", promoted, self.engine.checkpoint_id)
            self.engine = new
        return True


class OnSlot:
    """For the app's parts: `engine` and `taxonomy` read from the shared slot at each call
    (a dataclass part wraps a plain engine it was given in a slot of its own)."""

    slot: EngineSlot

    def __post_init__(self):
        self.slot = EngineSlot.wrap(self.slot)

    @property
    def engine(self) -> ChatEngine:
        return self.slot.engine

    @property
    def taxonomy(self):
        return self.slot.engine.taxonomy
