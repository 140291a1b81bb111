"""The local run's start-up: the emulator is imported with Python's cyclic
collector paused, and the collector is left as it was found; moto's bundled
data and its service models are read through the helper's cache."""

import gc

import pytest

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


def test_moto_data_read_through_the_cache_is_motos(tmp_path, monkeypatch):
    """The emulator keeps moto's bundled JSON parsed (service_models.cached_file):
    what moto gets is what it would have parsed, a fresh copy each time."""
    import gzip
    import json
    from importlib import resources

    import moto.utilities.utils as moto_utils

    from mltp import service_models
    from mltp.local import emulator  # noqa: F401  (installs the cached loader on import)

    monkeypatch.setenv("MLTP_CACHE_DIR", str(tmp_path))
    name = "ec2/resources/instance_types.json"
    want = json.loads(gzip.decompress((resources.files("moto") / f"{name}.gz").read_bytes()))
    first = moto_utils.load_resource(name)  # parsed, and kept
    assert service_models.entry_count(tmp_path / "botocore-models") == 1
    second = moto_utils.load_resource(name)  # from the entry
    assert first == want and second == want
    assert second is not first


@pytest.mark.parametrize("service,kind", [("sqs", "service-2"), ("sagemaker", "service-2"), ("s3", "paginators-1")])
def test_motos_service_models_read_through_the_cache_are_motos(tmp_path, monkeypatch, service, kind):
    """moto's own loader (its extras merged into botocore's models: SQS's
    service-2 has some) reads the JSON through the helper's cache once the
    emulator is loaded: what moto gets is what it would have parsed, a fresh
    copy each time, and the second process reads the entries."""
    import moto.core.loaders as moto_loaders
    import moto.core.utils as moto_utils

    from mltp import service_models
    from mltp.local import emulator  # noqa: F401  (moto's loader reads through the cache on import)

    monkeypatch.setenv("MLTP_CACHE_DIR", str(tmp_path))
    want = moto_loaders.create_loader().load_service_model(service, kind)  # moto's own, no cache
    first = moto_utils._load_service_model(service, kind)
    assert service_models.entry_count(tmp_path / "botocore-models") >= 1
    second = moto_utils._load_service_model(service, kind)
    assert first == want and second == want
    assert second is not first
    assert isinstance(moto_utils.create_loader(), moto_loaders.Loader)
