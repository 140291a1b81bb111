"""The local run's start-up: the emulator is imported with Python's cyclic
collector paused, and the collector is left as it was found."""

import gc

from mltp import local


def test_the_collector_is_paused_for_the_import_and_restored():
    assert gc.isenabled()
    with local._collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_paused_collector_stays_paused():
    gc.disable()
    try:
        with local._collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_is_restored_when_the_import_fails():
    try:
        with local._collector_paused():
            raise ImportError("no moto")
    except ImportError:
        pass
    assert gc.isenabled()
