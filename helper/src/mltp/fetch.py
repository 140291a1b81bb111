"""`mltp fetch-model`: the approved model, downloaded and verified, for a
deployment job.

By default the newest Approved version of the group (the highest version
number among the Approved ones, never the first of an ascending list). The
download goes to a temporary file that becomes model.tar.gz only once its
SHA-256 equals the one recorded at registration; model-package.json beside it
says which version it is.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from . import owned, registry
from .aws import Clients, refused
from .errors import ChecksumMismatch, InvalidInput


@dataclass(frozen=True)
class FetchResult:
    version: registry.Version
    model: Path
    manifest: Path
    sha256: str

    def summary(self) -> str:
        return (f"fetch-model: {self.version.name} ({self.version.status}) -> {self.model} "
                f"(sha256 {self.sha256[:12]}..., verified); {self.manifest.name} beside it")


def choose(clients: Clients, group: str, version: Optional[str]) -> registry.Version:
    if version is not None:
        return registry.resolve(clients, group, version=version)
    found = registry.champion(clients, group)
    if found is None:
        raise InvalidInput(f"model package group {group} has no Approved version to fetch; approve one first "
                           f"(mltp approve --version N), or name one with --version")
    return found


def fetch(clients: Clients, group: str, target: Path, version: Optional[str] = None) -> FetchResult:
    chosen = choose(clients, group, version)
    if not chosen.model_data_url:
        raise InvalidInput(f"{chosen.name} names no model artifact (ModelDataUrl)")
    if not chosen.sha256:
        raise ChecksumMismatch(f"{chosen.name} has no SHA-256 recorded ({registry.SHA256_KEY}); it cannot be verified. "
                               f"It was registered before checksums were recorded, or its build stopped right after "
                               f"registering")
    target.mkdir(parents=True, exist_ok=True)
    model = target / "model.tar.gz"
    bucket, key = registry.split_s3(chosen.model_data_url)
    digest = hashlib.sha256()
    with refused("GetObject", chosen.model_data_url):
        body = clients.s3.get_object(Bucket=bucket, Key=key)["Body"]
        with owned.replacing(model) as out:  # kept only when the digest matches
            for chunk in iter(lambda: body.read(1024 * 1024), b""):
                digest.update(chunk)
                out.write(chunk)
            actual = digest.hexdigest()
            if actual != chosen.sha256:
                raise ChecksumMismatch(f"{chosen.model_data_url} has sha256:{actual}, but {chosen.name} was registered "
                                       f"with sha256:{chosen.sha256}: the artifact changed since registration; "
                                       f"nothing written")
    manifest = target / "model-package.json"
    data = {
        "arn": chosen.arn,
        "group": chosen.group,
        "version": chosen.version,
        "status": chosen.status,
        "metrics": chosen.metrics,
        "commit": chosen.commit,
        "build_url": chosen.build_url,
        "run": chosen.run_name,
        "model_data_url": chosen.model_data_url,
        "sha256": actual,
        "approved_by": chosen.decided_by or None,
        "note": chosen.note or None,
    }
    owned.write_atomic(manifest, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return FetchResult(chosen, model, manifest, actual)
