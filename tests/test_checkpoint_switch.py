"""The app follows a checkpoint registry: a promoted checkpoint reaches every part of the app
at the next turn or page load, without a restart; a checkpoint that fails to load leaves the
running one in place."""

import shutil

import pytest

from app.about import about_markdown
from app.checkpoints import EngineSlot
from app.handlers import Handlers
from app.layout import page_load
from app.settings import AppSettings
from safevlm.assets import ASSETS_DIR
from safevlm.engine import ChatEngine
from safevlm.model.modeling import CheckpointError
from safevlm.registry import Registry
from safevlm.store import Store


class Loaded:
    """What the slot's loader returned: the engine with another checkpoint id."""

    def __init__(self, engine, checkpoint_id):
        self._engine, self.checkpoint_id = engine, checkpoint_id

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def describe(self):
        return {**self._engine.describe(), "checkpoint": self.checkpoint_id}


@pytest.fixture
def registry(tmp_path):
    reg = Registry(tmp_path / "checkpoints")
    for name in ("first", "second"):
        shutil.copytree(ASSETS_DIR / "checkpoint", reg.root / name)
        reg.register(reg.root / name, parent="assets/checkpoint", data_hash=name, metrics={})
    reg.promote("first")
    return reg


def test_the_engine_loads_a_registrys_promoted_checkpoint_under_its_id(registry):
    engine = ChatEngine.load("tiny", registry.root)
    assert engine.checkpoint_id == "first"


def test_a_promotion_reaches_every_part_of_the_app_at_the_next_page_load(tiny_engine, registry, tmp_path):
    loads = []

    def load(path):
        loads.append(path.name)
        return Loaded(tiny_engine, path.name)

    slot = EngineSlot(Loaded(tiny_engine, "first"), registry, load)
    with Store(tmp_path / "log.db") as store:
        handlers = Handlers(slot, store, AppSettings())
        assert not slot.refresh() and loads == []  # nothing new: no load
        registry.promote("second")
        values = page_load(handlers)
        assert loads == ["second"]
        for part in (handlers, handlers.chat, handlers.chatlog, handlers.annotation, handlers.api):
            assert part.engine.checkpoint_id == "second"
        assert "`second` (promoted in the registry" in values[-1]
        assert not slot.refresh() and loads == ["second"]


def test_a_promoted_checkpoint_that_fails_to_load_keeps_the_running_one_and_is_not_retried(
        tiny_engine, registry, caplog):
    calls = []

    def broken(path):
        calls.append(path)
        raise CheckpointError(f"{path} is not a SafeVLM checkpoint")

    slot = EngineSlot(Loaded(tiny_engine, "first"), registry, broken)
    registry.promote("second")
    assert not slot.refresh() and not slot.refresh()
    assert slot.engine.checkpoint_id == "first" and len(calls) == 1
    assert "could not switch to the promoted checkpoint second" in caplog.text


def test_the_slot_for_settings_follows_only_a_registry(tiny_engine, registry):
    assert EngineSlot.for_settings(tiny_engine, AppSettings(checkpoint=str(registry.root))).registry is not None
    assert EngineSlot.for_settings(tiny_engine, AppSettings(checkpoint=str(registry.root / "first"))).registry is None
    assert EngineSlot.for_settings(tiny_engine, AppSettings()).registry is None
    assert "promoted in the registry" not in about_markdown(tiny_engine, AppSettings(), True)
