"""botocore's service models, kept parsed on disk so a helper process does not
parse them again: every `mltp` process that talks to AWS pays for parsing
the JSON models of the services it calls (S3's, SageMaker's and the endpoint
rules: about 0.1 to 0.2 s per process on 2 cores, the largest fixed cost of
`publish` and `start` after the imports).

A model file is a pure function of the botocore installation, so an entry is
keyed by the file's path, size and modification time, botocore's version and
the Python version, and holds the parsed data in `marshal` form, which loads
about five times faster than the JSON parses and, unlike pickle, runs no code
while loading (the entries are only ever read as data). botocore
parses with OrderedDict and relies only on the order, which plain dicts keep.
The list of services botocore finds on its search path (a walk of some 900
folders) is kept the same way, keyed by the folders' modification times.
The entries live in the helper's own cache (MLTP_CACHE_DIR, else
$XDG_CACHE_HOME/mltp, else ~/.cache/mltp).

An entry that cannot be read (missing, truncated, altered, for another file:
each holds its key and the SHA-256 of its data) is ignored and written again
from the JSON; writes go to a temporary file and are renamed,
so concurrent builds never read half an entry. Any failure falls back to
botocore's own loader: the cache can only make a process faster, never make
it fail. MLTP_NO_MODEL_CACHE=1 turns it off.
"""

import gc
import hashlib
import marshal
import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import botocore
import botocore.loaders
import botocore.session

from . import owned

FORMAT = 1
_EXTENSIONS = (".json", ".json.gz")  # what botocore's JSONFileLoader tries, in its order


def cache_dir() -> Path:
    root = os.environ.get("MLTP_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "mltp")
    return Path(root) / "botocore-models"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


class _Entries:
    """Files named by the SHA-256 of their key. Each holds its key and the
    SHA-256 of its payload (marshal bytes): a truncated or altered entry, or
    one filed under the wrong name, is never used."""

    def __init__(self, folder: Path):
        self.folder = folder

    def _path(self, key: str) -> Path:
        return self.folder / (hashlib.sha256(key.encode("utf-8")).hexdigest() + ".marshal")

    def read(self, key: str) -> Optional[Any]:
        try:
            with open(self._path(key), "rb") as handle:
                raw = handle.read()  # marshal.load(handle) would read it in tiny pieces
        except OSError:
            return None
        head, _, payload = raw.partition(b"\n")
        if head != self._head(key, payload):
            return None
        # A model is some 100,000 small dicts and lists: with the cyclic collector
        # on, building them triggers collections that cost more than the load.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return marshal.loads(payload)
        except Exception:  # cannot happen for a payload whose digest matched; parse the JSON again
            return None
        finally:
            if collecting:
                gc.enable()

    @staticmethod
    def _head(key: str, payload: bytes) -> bytes:
        return (hashlib.sha256(key.encode("utf-8")).hexdigest() + " " + hashlib.sha256(payload).hexdigest()).encode()

    def write(self, key: str, data: Any) -> None:
        entry = self._path(key)
        try:
            payload = marshal.dumps(data)
            self.folder.mkdir(parents=True, exist_ok=True)
            owned.write_atomic(entry, self._head(key, payload) + b"\n" + payload)
        except (OSError, ValueError):  # read-only cache, or a value marshal cannot hold: parse next time
            pass


def _key(*parts: object) -> str:
    return "\0".join(str(p) for p in (FORMAT, botocore.__version__, sys.version_info[:2], marshal.version) + parts)


class CachingFileLoader(botocore.loaders.JSONFileLoader):
    """botocore's JSON loader, with each parsed file kept in marshal form."""

    def __init__(self, entries: _Entries):
        self.entries = entries

    def load_file(self, file_path):
        source = self._source(file_path)
        if source is None:
            return super().load_file(file_path)
        path, stat = source
        key = _key("file", path, stat.st_size, stat.st_mtime_ns)
        data = self.entries.read(key)
        if data is None:
            data = super().load_file(file_path)
            if data is not None:
                data = _plain(data)
                self.entries.write(key, data)
        return data

    @staticmethod
    def _source(file_path: str):
        for ext in _EXTENSIONS:
            try:
                return file_path + ext, os.stat(file_path + ext)
            except OSError:
                continue
        return None



class CachingLoader(botocore.loaders.Loader):
    """botocore's loader, with the list of available services remembered."""

    @botocore.loaders.instance_cache
    def list_available_services(self, type_name):
        stamps = []
        for folder in self._potential_locations():
            try:
                stamps.append((folder, os.stat(folder).st_mtime_ns))
            except OSError:
                continue
        key = _key("services", type_name, stamps)
        entries = self.file_loader.entries
        services = entries.read(key)
        if not isinstance(services, list):
            services = super().list_available_services(type_name)
            entries.write(key, list(services))
        return services


def caching_file_loader() -> CachingFileLoader:
    """A file loader reading parsed JSON from the cache (for a loader of botocore's kind)."""
    return CachingFileLoader(_Entries(cache_dir()))


def create_loader(search_path_string: Optional[str] = None) -> CachingLoader:
    """botocore.loaders.create_loader, with the cache: AWS_DATA_PATH folders first."""
    paths = [os.path.expanduser(os.path.expandvars(p)) for p in (search_path_string or "").split(os.pathsep) if p]
    return CachingLoader(extra_search_paths=paths, file_loader=caching_file_loader())


def botocore_session() -> botocore.session.Session:
    """A botocore session whose data loader reads parsed models from the cache."""
    session = botocore.session.get_session()
    if not os.environ.get("MLTP_NO_MODEL_CACHE"):
        session.register_component("data_loader", create_loader(session.get_config_variable("data_path")))
    return session


def cached_file(tag: str, path: str, load: Callable[[], Any]) -> Any:
    """load() (a parse of the JSON file at `path`), kept like a service model:
    for other bundled JSON data, such as the emulator's (moto's EC2 instance types)."""
    if os.environ.get("MLTP_NO_MODEL_CACHE"):
        return load()
    try:
        stat = os.stat(path)
    except OSError:
        return load()
    entries = _Entries(cache_dir())
    key = _key(tag, path, stat.st_size, stat.st_mtime_ns)
    data = entries.read(key)
    if data is None:
        data = load()
        entries.write(key, data)
    return data


_SHARED: Dict[str, CachingLoader] = {}


def share_in_process() -> None:
    """Every botocore session this process creates from now on (the emulator's
    too) gets one shared, cached loader. moto creates a session per service
    backend as it imports, and three of them parse EC2's 2 MB model to list its
    regions: about a second of every local run's start-up. The loaded models
    are read-only to botocore, as they already are to the clients of one session."""
    if os.environ.get("MLTP_NO_MODEL_CACHE"):
        return

    def shared(search_path_string=None):
        key = search_path_string or ""
        if key not in _SHARED:
            _SHARED[key] = create_loader(search_path_string)
        return _SHARED[key]

    botocore.session.create_loader = shared


def entry_count(folder: Optional[Path] = None) -> int:
    """How many entries the cache holds (for tests)."""
    folder = folder or cache_dir()
    return len(list(folder.glob("*.marshal"))) if folder.is_dir() else 0
