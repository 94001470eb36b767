"""Event routing between a session's emitter and its clients' emitters."""

from __future__ import annotations

import gc

from resilient_aws.events import Emitter, Event


def _recorder():
    seen: list[str] = []
    return seen, lambda event: seen.append(event.kind)


def test_a_client_event_reaches_the_client_and_the_session_listeners():
    session = Emitter()
    client, sibling = Emitter(parent=session), Emitter(parent=session)
    (at_session, on_session), (at_client, on_client), (at_sibling, on_sibling) = (
        _recorder(), _recorder(), _recorder())
    session.add(on_session)
    client.add(on_client)
    sibling.add(on_sibling)
    client.emit(Event("retry"))
    assert (at_session, at_client, at_sibling) == (["retry"], ["retry"], [])


def test_a_session_event_reaches_every_client_s_listeners():
    session = Emitter()
    clients = [Emitter(parent=session) for _ in range(3)]
    records = []
    for c in clients:
        seen, listener = _recorder()
        c.add(listener)
        records.append(seen)
    session.emit(Event("breaker_state"))
    assert records == [["breaker_state"]] * 3


def test_a_garbage_collected_client_no_longer_receives_session_events():
    session = Emitter()
    client = Emitter(parent=session)
    client.add(lambda event: None)
    del client
    gc.collect()
    assert len(session._children) == 0


def test_a_listener_that_raises_does_not_stop_the_others():
    emitter = Emitter()
    seen, listener = _recorder()

    def broken(event):
        raise RuntimeError("metrics bug")

    emitter.add(broken)
    emitter.add(listener)
    emitter.emit(Event("failover"))
    assert seen == ["failover"]


def test_a_listener_that_keeps_raising_logs_one_traceback(caplog):
    import logging

    from resilient_aws.events import Emitter, Event

    emitter = Emitter()
    emitter.add(lambda event: 1 / 0)
    with caplog.at_level(logging.DEBUG, logger="resilient_aws"):
        for _ in range(5):
            emitter.emit(Event("retry"))
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert len([r for r in caplog.records if r.levelno == logging.DEBUG]) == 4


def test_a_listener_given_as_a_bound_method_can_be_removed():
    # ``heard.append`` is a new bound-method object at each access: removal compares by equality
    emitter = Emitter()
    heard: list[Event] = []
    emitter.add(heard.append)
    emitter.remove(heard.append)
    emitter.emit(Event("retry", service="dynamodb", region="us-east-1"))
    assert heard == []
