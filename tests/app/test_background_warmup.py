"""The server's background warm-up: steps start between page builds, and a session that arrives before the
warm-up is done computes what it needs itself, with the same results."""
from __future__ import annotations

import logging
import shutil
import threading

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from panel_app.data import RunData, clear_cache, load_run_data
from panel_app.server import BackgroundWarmUp, warm_up

WAIT = 120  # seconds before a test gives up on an event (a deadlock), never a timing assertion


@pytest.fixture
def run_copy(app_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(app_run, copy)
    clear_cache()
    yield copy
    clear_cache()


def _background_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("xsgpu-warm-up")]


def test_a_session_during_the_warm_up_computes_its_own_results(run_copy, monkeypatch):
    import panel_app.panels
    from panel_app.app import build_app
    from panel_app.panels import ModelOverview
    from panel_app.panels._common import process_cached

    entered, release = threading.Event(), threading.Event()
    real_steps = panel_app.panels.warm_up_steps

    def held_steps(data, **options):   # cutoff, device
        def hold():
            entered.set()
            assert release.wait(WAIT)
        return [("hold", hold), *real_steps(data, **options)]

    monkeypatch.setattr(panel_app.panels, "warm_up_steps", held_steps)
    out = warm_up(run_copy, panels="background")  # no loop: its thread starts at once and stops at "hold"
    assert "panels_s" not in out and entered.wait(WAIT)
    data = load_run_data(run_copy)
    assert not any(k[0] == "overview" for k in data._cache.get("panels_lru", {}))  # nothing computed for us yet

    page = build_app(run_copy)                    # the session's page, while the warm-up waits
    state = page.xsgpu_state
    overview = ModelOverview(state=state, scope="test")
    table, m_ap = overview.metrics()
    ids = overview.scope_ids()
    y, p = state.y_act()[ids], data.y_prob[ids]
    assert len(ids) == 300 and (table["tp"] + table["fn"] == y.sum(axis=0)).all()
    has = y.any(axis=0)
    want = np.array([average_precision_score(y[:, j], p[:, j]) for j in np.flatnonzero(has)])
    np.testing.assert_allclose(table["ap"].to_numpy()[has], want, rtol=1e-6)
    assert m_ap == pytest.approx(want.mean())

    release.set()
    for t in _background_threads():
        t.join(WAIT)
        assert not t.is_alive()
    # the warm-up then finds the session's results (the same key) or recomputes the same numbers
    again, again_map = process_cached(state, ("overview", "test", *overview._key("test")), lambda: None)
    np.testing.assert_allclose(again["ap"].to_numpy(), table["ap"].to_numpy())
    assert again_map == pytest.approx(m_ap)
    assert data.cached(("probability_order",), lambda: None) is data.probability_order()


def test_one_result_being_built_does_not_hold_up_the_others(rng):
    data = RunData.from_arrays(y_true=rng.random((50, 17)) < 0.3, y_prob=rng.random((50, 17)),
                               coords=rng.normal(size=(50, 6)))
    entered, release = threading.Event(), threading.Event()
    slow_result = object()

    def slow():
        entered.set()
        assert release.wait(WAIT)
        return slow_result

    got: dict = {}
    builder = threading.Thread(target=lambda: got.setdefault("builder", data.cached(("slow",), slow)))
    builder.start()
    assert entered.wait(WAIT)
    other = threading.Thread(target=lambda: got.setdefault("other", data.cached(("other",), lambda: 1)))
    other.start()
    other.join(WAIT)
    assert got.get("other") == 1                  # another key is served while "slow" is built
    waiter = threading.Thread(target=lambda: got.setdefault("waiter", data.cached(("slow",), lambda: "again")))
    waiter.start()
    release.set()
    for t in (builder, waiter):
        t.join(WAIT)
    assert got["builder"] is slow_result and got["waiter"] is slow_result  # the same key waits and reuses it


def test_steps_start_from_the_loop_once_the_page_being_built_is_done():
    from tornado.ioloop import IOLoop

    events: list[str] = []
    ready = threading.Event()
    holder: dict = {}

    def serve() -> None:
        loop = IOLoop()
        holder["loop"] = loop
        ready.set()
        loop.start()
        loop.close()

    threading.Thread(target=serve, daemon=True).start()
    assert ready.wait(WAIT)
    loop = holder["loop"]
    page_started = threading.Event()

    def page() -> None:                           # a page build: it runs on the loop and blocks it
        events.append("page start")
        page_started.set()
        for _ in range(3):
            threading.Event().wait(0.05)          # stands in for seconds of Bokeh model building
        events.append("page end")

    def start_warm_up() -> None:
        loop.add_callback(page)
        warm = BackgroundWarmUp([("a", lambda: events.append("a")), ("b", lambda: events.append("b"))],
                                io_loop=loop, delay=0)
        warm.start()
        holder["warm"] = warm

    loop.add_callback(start_warm_up)
    assert page_started.wait(WAIT)
    while "warm" not in holder:
        threading.Event().wait(0.01)
    assert holder["warm"].done.wait(WAIT)
    loop.add_callback(loop.stop)
    assert events == ["page start", "page end", "a", "b"]
    assert set(holder["warm"].seconds) == {"a", "b"}


def test_a_failed_step_is_logged_and_the_next_runs(caplog):
    ran = []

    def broken():
        raise RuntimeError("no disk")

    with caplog.at_level(logging.ERROR):
        warm = BackgroundWarmUp([("broken", broken), ("next", lambda: ran.append(1))], run_path="RUN").start()
        assert warm.done.wait(WAIT)
    assert ran == [1] and "background warm-up step 'broken' failed" in caplog.text


def test_warm_up_names_its_choices(app_run):
    with pytest.raises(ValueError, match="'panels' parameter of warm_up must be 'now', 'background' or 'none'"):
        warm_up(app_run, panels="later")
