"""The cache of botocore's parsed service models (service_models.py): a hit
gives exactly what botocore parses, a changed source or a corrupt entry is
parsed again, and clients built on it talk to AWS (moto over HTTP) as before."""

import gzip
import json
import marshal
import os
from pathlib import Path

import botocore.loaders
import pytest

from mltp import service_models
from mltp.aws import Clients

REGION = "ap-northeast-2"


def _loader(folder: Path) -> service_models.CachingLoader:
    return service_models.CachingLoader(file_loader=service_models.CachingFileLoader(service_models._Entries(folder)))


@pytest.mark.parametrize("service,kind", [("s3", "service-2"), ("s3", "endpoint-rule-set-1"),
                                          ("sagemaker", "service-2"), ("stepfunctions", "paginators-1")])
def test_a_hit_equals_what_botocore_parses(tmp_path, service, kind):
    plain = botocore.loaders.Loader().load_service_model(service, kind)
    first = _loader(tmp_path).load_service_model(service, kind)
    assert service_models.entry_count(tmp_path) >= 1
    second = _loader(tmp_path).load_service_model(service, kind)  # a new process: from the entries
    # Same content and the same key order at every level (botocore's OrderedDict order).
    assert json.dumps(first) == json.dumps(plain)
    assert json.dumps(second) == json.dumps(plain)
    assert second == plain


def test_the_list_of_services_is_botocores_and_is_kept(tmp_path):
    expected = botocore.loaders.Loader().list_available_services("service-2")
    assert _loader(tmp_path).list_available_services("service-2") == expected
    assert _loader(tmp_path).list_available_services("service-2") == expected


def _model_dir(root: Path, body: dict) -> Path:
    """An AWS_DATA_PATH folder with one made-up service model."""
    folder = root / "data" / "mltpfake" / "2024-01-01"
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "service-2.json.gz", "wt") as handle:
        json.dump(body, handle)
    return root / "data"


def test_a_changed_source_file_misses(tmp_path):
    data = _model_dir(tmp_path, {"version": "2.0", "metadata": {"n": 1}})
    cache = tmp_path / "cache"
    loader = service_models.CachingLoader(extra_search_paths=[str(data)],
                                          file_loader=service_models.CachingFileLoader(service_models._Entries(cache)))
    assert loader.load_service_model("mltpfake", "service-2")["metadata"] == {"n": 1}
    source = data / "mltpfake" / "2024-01-01" / "service-2.json.gz"
    with gzip.open(source, "wt") as handle:
        json.dump({"version": "2.0", "metadata": {"n": 22}}, handle)  # another size
    os.utime(source, ns=(1, 1))
    fresh = service_models.CachingLoader(extra_search_paths=[str(data)],
                                         file_loader=service_models.CachingFileLoader(service_models._Entries(cache)))
    assert fresh.load_service_model("mltpfake", "service-2")["metadata"] == {"n": 22}


def test_a_corrupt_entry_is_ignored_and_rewritten(tmp_path):
    want = botocore.loaders.Loader().load_service_model("stepfunctions", "service-2")
    _loader(tmp_path).load_service_model("stepfunctions", "service-2")
    entries = sorted(tmp_path.glob("*.marshal"))
    assert entries
    for entry in entries:
        entry.write_bytes(entry.read_bytes()[: len(entry.read_bytes()) // 2])  # truncated
    assert _loader(tmp_path).load_service_model("stepfunctions", "service-2") == want
    assert _loader(tmp_path).load_service_model("stepfunctions", "service-2") == want
    for entry in entries:  # written again, whole
        head, _, payload = entry.read_bytes().partition(b"\n")
        assert isinstance(marshal.loads(payload), (dict, list))
    assert not list(tmp_path.glob("*.tmp"))


def test_an_altered_entry_is_ignored(tmp_path):
    want = botocore.loaders.Loader().load_service_model("sts", "service-2")
    _loader(tmp_path).load_service_model("sts", "service-2")
    altered_any = False
    for entry in tmp_path.glob("*.marshal"):
        head, _, payload = entry.read_bytes().partition(b"\n")
        if b"GetCallerIdentity" in payload:  # STS's model: it still loads, but is not what was written
            altered = payload.replace(b"GetCallerIdentity", b"GetCallerIdentitX")
            assert isinstance(marshal.loads(altered), dict)
            entry.write_bytes(head + b"\n" + altered)
            altered_any = True
    assert altered_any
    assert _loader(tmp_path).load_service_model("sts", "service-2") == want


def test_an_entry_for_another_key_is_not_used(tmp_path):
    entries = service_models._Entries(tmp_path)
    entries.write("a", {"x": 1})
    assert entries.read("a") == {"x": 1}
    os.replace(entries._path("a"), entries._path("b"))  # a file under the wrong name
    assert entries.read("b") is None
    assert entries.read("a") is None


def test_an_unwritable_cache_only_costs_a_parse(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    loader = _loader(blocker / "cache")
    assert loader.load_service_model("sts", "service-2")["metadata"]["serviceId"] == "STS"


def test_clients_use_the_cache_and_work_over_http(moto_endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("MLTP_CACHE_DIR", str(tmp_path))
    clients = Clients(REGION, moto_endpoint)
    clients.sfn.list_state_machines()
    assert service_models.entry_count(tmp_path / "botocore-models") > 0
    again = Clients(REGION, moto_endpoint)  # parsed models from the cache
    assert "stateMachines" in again.sfn.list_state_machines()
    assert again.account_id() == clients.account_id()


def test_the_cache_can_be_turned_off(moto_endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("MLTP_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("MLTP_NO_MODEL_CACHE", "1")
    Clients(REGION, moto_endpoint).sfn.list_state_machines()
    assert service_models.entry_count(tmp_path / "botocore-models") == 0


def test_the_emulator_shares_one_cached_loader_across_sessions():
    """moto makes a botocore session per backend; with the emulator loaded, they
    all read models through one cached loader (parsed once per process)."""
    import botocore.session

    import mltp.local.emulator  # noqa: F401  (installs the shared loader on import)

    first = botocore.session.get_session().get_component("data_loader")
    second = botocore.session.Session().get_component("data_loader")
    assert isinstance(first, service_models.CachingLoader)
    assert first is second
    regions = botocore.session.get_session().get_available_regions("ec2")
    assert REGION in regions


def test_the_emulator_stops_and_frees_its_port():
    import socket

    from mltp.local import emulator

    server, endpoint = emulator.start_local_moto()
    address = server.get_host_and_port()
    socket.create_connection(address, timeout=5).close()  # listening
    emulator.stop_local_moto(server)
    with pytest.raises(OSError):
        socket.create_connection(address, timeout=5)
    again, _ = emulator.start_local_moto()  # and a new one starts after it
    emulator.stop_local_moto(again)
