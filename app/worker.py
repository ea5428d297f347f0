"""The model thread: every model call of the app runs on one thread the app owns, and a
turn's stop request. Knows nothing of Gradio, the store or the panel."""

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class ModelWorker:
    """Runs every model call on one thread the app owns.

    A turn runs to its end on the model thread and hands its updates over a queue, so it
    finishes and is logged even when the browser goes away (it is then stopped and logged
    as such), whichever Gradio worker thread consumes it.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="safevlm-model")

    def call(self, fn: Callable[[], Any]) -> Any:
        return self._pool.submit(fn).result()

    def stream(
        self, produce: Callable[[Callable[[Any], None]], None], on_abandon: Callable[[], None]
    ) -> Iterator[Any]:
        """Run `produce(emit)` on the model thread and yield what it emits, in order.
        If the consumer stops early, `on_abandon()` tells the producer to wrap up."""
        items: queue.Queue = queue.Queue()
        done = object()

        def run() -> None:
            try:
                produce(lambda item: items.put((True, item)))
                items.put((True, done))
            except BaseException as error:  # handed to the consumer, which raises it
                items.put((False, error))

        self._pool.submit(run)
        finished = False
        try:
            while True:
                ok, item = items.get()
                if not ok:
                    finished = True
                    raise item
                if item is done:
                    finished = True
                    return
                yield item
        finally:
            if not finished:
                on_abandon()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class TurnStop:
    """A stop request for one turn: `event` ends generation (the model also sets it when it
    finishes), `requested` records that a person (or a closed browser) asked for it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.requested = False

    def request(self) -> None:
        self.requested = True
        self.event.set()
