"""Which clients a drill runs, the call tag, and the asyncio rows' pieces that need no aiobotocore.

The asyncio rows themselves (aiobotocore, resilient_aws.aio) run in the asyncio suite
(``tests/aio/test_aio_drill.py``, ``.venv-aio``); here, where aiobotocore may be absent, the drill must
run its three thread clients exactly as before and say that the asyncio rows need the ``aio`` extra.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from resilient_aws.bench import storm
from resilient_aws.drill import CLIENTS, DrillConfig
from resilient_aws.drill.aio import Heartbeat
from resilient_aws.drill.clients import AIO_CLIENTS, _tag, aio_available, call_tag, clients_for, specs_for, tagged

THREADED = [label for label, _, _ in CLIENTS]


def test_the_thread_clients_come_first_and_the_asyncio_ones_only_with_aiobotocore():
    labels = [label for label, _, _ in clients_for(DrillConfig())]
    assert labels == THREADED + (["aiobotocore", "aio"] if aio_available() else [])
    assert [label for label, _, _ in clients_for(DrillConfig(aio=False))] == THREADED
    assert [label for label, _, _ in clients_for(DrillConfig(clients=("resilient", "legacy")))] == [
        "legacy", "resilient"]  # table order, whatever the order asked
    assert specs_for(["aio", "legacy"]) == (CLIENTS[0], AIO_CLIENTS[1])


@pytest.mark.skipif(aio_available(), reason="aiobotocore is installed here")
def test_asking_for_an_asyncio_row_without_aiobotocore_says_what_to_install():
    for cfg in (DrillConfig(aio=True), DrillConfig(clients=("aio",))):
        with pytest.raises(ValueError, match=r"pip install 'resilient-aws\[aio\]'"):
            clients_for(cfg)
    assert storm.client_names() == storm.CLIENT_NAMES  # the storm benchmark: its five rows, as before
    assert list(storm.Settings().clients) == list(storm.CLIENT_NAMES)


@pytest.mark.parametrize("clients", [(), ("botocore",)])
def test_unknown_or_no_clients_are_refused(clients):
    with pytest.raises(ValueError, match="clients must be some of"):
        DrillConfig(clients=clients)


def test_the_call_tag_is_per_thread():
    seen: dict[str, str | None] = {}
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with tagged("legacy", 1):
            inside.set()
            release.wait(5)
            seen["other"] = _tag.get()

    t = threading.Thread(target=other)
    t.start()
    inside.wait(5)
    with tagged("resilient", 2):
        seen["main"] = _tag.get()
        release.set()
        t.join(5)
    assert seen == {"main": call_tag("resilient", 2), "other": call_tag("legacy", 1)}
    assert _tag.get() is None


def test_the_call_tag_is_per_asyncio_task():
    async def call(label: str, phase: int) -> str | None:
        with tagged(label, phase):
            await asyncio.sleep(0.01)  # the other task sets its own tag meanwhile
            return _tag.get()

    async def both() -> list[str | None]:
        return list(await asyncio.gather(call("aio", 1), call("aiobotocore", 3)))

    assert asyncio.run(both()) == [call_tag("aio", 1), call_tag("aiobotocore", 3)]


def test_the_heartbeat_measures_how_long_the_loop_was_held():
    async def run() -> dict:
        beat = Heartbeat()
        task = asyncio.create_task(beat.run())
        await asyncio.sleep(0.05)
        import time

        time.sleep(0.03)  # a callback holding the loop for 30 ms
        await asyncio.sleep(0.05)
        beat.running = False
        await task
        return beat.summary()

    summary = asyncio.run(run())
    assert summary["beats"] > 10
    assert 25 <= summary["max_ms"] < 200
    assert summary["over_ms"]["10"] >= 1
    if summary["held_max_ms"] is not None:  # Linux: the same 30 ms, held by the loop, not waiting for a CPU
        assert summary["held_max_ms"] >= 25
