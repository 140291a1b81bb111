"""`mltp models|approve|reject|fetch-model`: after the gate, the model package group.

The group comes from the repo's config, or from --group and --region alone (a
deployment job without the model repo); the CLI chooses the clients (AWS, or
the local emulator holding the repo's local registry with --local)."""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from ..config import Config
from ..errors import InvalidInput
from ..keyvalue import write_lines


@dataclass(frozen=True)
class RegistryTarget:
    """Which model package group the registry commands act on, and where."""

    group: str
    region: str
    repo: Path


def target(repo: Path, cfg: Optional[Config], local: bool = False, region: Optional[str] = None,
           group: Optional[str] = None) -> RegistryTarget:
    """From --group (no config; `cfg` None) or from the config."""
    if group:
        if local:
            raise InvalidInput("--group cannot be used with --local: the local registry belongs to the model repo")
        region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not region:
            raise InvalidInput("--group needs --region (or AWS_REGION): there is no config to read it from")
        return RegistryTarget(group, region, Path(repo))
    return RegistryTarget(cfg.registry.model_package_group, region or cfg.aws.region, cfg.repo)


def models(where: RegistryTarget, clients, limit: int = 20) -> list:
    """The group's versions, newest first, with gate values, commit, build and decision."""
    from .. import registry

    return registry.list_versions(clients, where.group, limit=limit)


def models_lines(group: str, versions: list, as_json: bool = False) -> List[str]:
    if as_json:
        from .. import registry

        return [registry.to_json(versions)]
    return models_table(group, versions)


def models_table(group: str, versions: list) -> List[str]:
    if not versions:
        return [f"model package group {group}: no versions"]
    rows = []
    for v in versions:
        metrics = " ".join(f"{k}={v.metrics[k]:g}" for k in sorted(v.metrics)) or "-"
        decision = f"{v.decided_by} {v.decided_at}".strip() or "-"
        if v.note:
            decision += f": {v.note}"
        rows.append([str(v.version), v.status, v.created.strftime("%Y-%m-%d %H:%M") if v.created else "-",
                     metrics, v.commit[:10] or "-", v.build_url or "-", decision])
    header = ["version", "status", "created (UTC)", "gate metrics", "commit", "build", "decided by"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()  # noqa: E731
    return [f"model package group {group} (newest first):", fmt(header), *(fmt(r) for r in rows)]


def check_choice(version: Optional[str], run: Optional[str]) -> None:
    """approve / reject name exactly one version (before any AWS call or emulator)."""
    if (version is None) == (run is None):
        raise InvalidInput("give --version N or --run NAME (one of them)")


def decide(where: RegistryTarget, clients, status: str, version: Optional[str] = None, run: Optional[str] = None,
           note: Optional[str] = None, by: Optional[str] = None):
    """approve / reject: UpdateModelPackage with who, when, the build and the note."""
    from .. import registry

    check_choice(version, run)
    chosen = registry.resolve(clients, where.group, version=version, run=run)
    return registry.decide(clients, chosen, status, registry.decider(by), os.environ.get("BUILD_URL", ""), note or "")


def approve(where: RegistryTarget, clients, **choice):
    return decide(where, clients, "Approved", **choice)


def reject(where: RegistryTarget, clients, **choice):
    return decide(where, clients, "Rejected", **choice)


def fetch_model(where: RegistryTarget, clients, version: Optional[str] = None, to: Optional[str] = None):
    """Download the newest Approved (or the named) version's model.tar.gz, verified."""
    from .. import fetch, owned

    folder = Path(to) if to else owned.owned_dir(where.repo, "model")
    return fetch.fetch(clients, where.group, folder, version)


def fetch_lines(result) -> List[str]:
    lines = []
    if result.version.status != "Approved":
        lines.append(f"note: {result.version.name} is {result.version.status}, not Approved")
    return lines + [result.summary()]


def write_fetch_info(result, info_file: str) -> None:
    write_lines(Path(info_file), (("arn", result.version.arn), ("group", result.version.group),
                                  ("version", result.version.version), ("status", result.version.status),
                                  ("model", result.model), ("manifest", result.manifest), ("sha256", result.sha256)))
