"""The on-demand price of a SageMaker instance type, from the AWS Price List API.

`pricing:GetProducts` with service code AmazonSageMaker answers one product per
(region, instance, kind of use): product family "ML Instance", attributes
`regionCode` (eu-west-1), `instanceName` (ml.m5.xlarge) and `platoinstancetype`,
the kind of use: "Training" for training jobs, "Processing" for processing
jobs; "Hosting", "Notebook", "SpotTraining", ... for the rest (the price list's
own name for it; its usage type reads like "EU-Train:ml.m5.xlarge"). Its
OnDemand term has one price dimension in USD per hour ("Hrs"). Those are the
filters here, and the answer is checked against them again (TERM_MATCH is an
exact match, but an answer that holds something else must not be taken for the
price).

The Price List API has endpoints in a few regions only (us-east-1 among them),
whatever the region priced; the client is made in aws.Clients (`pricing`).

Prices change rarely: each found price is kept on disk for a week
(`<mltp cache>/prices/prices.json`, beside the helper's other caches), so a
build asks once per instance type and component a week. What cannot be had
(no permission, no network, not in the list) is a Price with a reason and no
value: the report says "price unknown" and why, and nothing fails.
"""

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from .aws import PRICING_REGION, error_code  # noqa: F401 - PRICING_REGION: where the client asks

SERVICE_CODE = "AmazonSageMaker"
PRODUCT_FAMILY = "ML Instance"
USE_ATTRIBUTE = "platoinstancetype"  # the price list's attribute for training, processing, hosting, ...
COMPONENTS = {"training": "Training", "processing": "Processing"}
CACHE_SECONDS = 7 * 24 * 3600
CACHE_FORMAT = 1
_HOURLY_UNITS = {"hrs", "hr", "hours", "hour"}


@dataclass(frozen=True)
class Price:
    """USD per instance-hour, or None and why not."""

    usd_per_hour: Optional[float]
    reason: str = ""  # when unknown: "no permission (pricing:GetProducts)", ...
    cached: bool = False


def cache_dir() -> Path:
    """MLTP_CACHE_DIR, else $XDG_CACHE_HOME/mltp, else ~/.cache/mltp; then prices/."""
    root = os.environ.get("MLTP_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "mltp")
    return Path(root) / "prices"


NO_PERMISSION = "no permission (pricing:GetProducts)"
UNREACHABLE = "the Price List API could not be reached"
NO_CREDENTIALS = "no AWS credentials"
BLOCKED = (NO_PERMISSION, UNREACHABLE, NO_CREDENTIALS)  # the same for every instance type


def lookup(clients, region: str, instance_type: str, kind: str, cache: Optional[Path] = None,
           now: Optional[float] = None, ask_with=None) -> Price:
    """The on-demand hourly price of `instance_type` for a `kind` job
    (training | processing) in `region`: from the cache when younger than a
    week, else asked (and kept)."""
    component = COMPONENTS.get(kind)
    if component is None:
        return Price(None, f"no price for {kind} jobs")
    if region.startswith("cn-"):
        return Price(None, "the Price List API mltp asks prices the aws partition only")
    now = time.time() if now is None else now
    path = (cache or cache_dir()) / "prices.json"
    key = f"{region}/{component}/{instance_type}"
    entries = _read(path)
    hit = entries.get(key)
    if isinstance(hit, dict) and isinstance(hit.get("usd_per_hour"), (int, float)) \
            and isinstance(hit.get("at"), (int, float)) and 0 <= now - hit["at"] < CACHE_SECONDS:
        return Price(float(hit["usd_per_hour"]), cached=True)
    price = (ask_with or ask)(clients, region, instance_type, component)
    if price.usd_per_hour is not None:
        entries[key] = {"usd_per_hour": price.usd_per_hour, "at": now}
        _write(path, entries)
    return price


def ask(clients, region: str, instance_type: str, component: str) -> Price:
    """One GetProducts call (and its pages), turned into a Price; never raises for AWS."""
    import botocore.exceptions

    filters = [{"Type": "TERM_MATCH", "Field": field, "Value": value}
               for field, value in (("productFamily", PRODUCT_FAMILY), ("regionCode", region),
                                    ("instanceName", instance_type), (USE_ATTRIBUTE, component))]
    try:
        client = clients.pricing
        token = None
        for _ in range(10):
            kwargs: Dict[str, Any] = {"ServiceCode": SERVICE_CODE, "Filters": filters, "FormatVersion": "aws_v1",
                                      "MaxResults": 100}
            if token:
                kwargs["NextToken"] = token
            answer = client.get_products(**kwargs)
            found = hourly_price(answer.get("PriceList") or [], region, instance_type, component)
            if found is not None:
                return Price(found)
            token = answer.get("NextToken")
            if not token:
                break
    except botocore.exceptions.NoCredentialsError:
        return Price(None, NO_CREDENTIALS)
    except botocore.exceptions.ClientError as exc:
        code = error_code(exc)
        if code in ("AccessDeniedException", "AccessDenied", "UnauthorizedOperation"):
            return Price(None, NO_PERMISSION)
        return Price(None, f"the Price List API refused: {code or 'error'}")
    except botocore.exceptions.BotoCoreError:
        return Price(None, UNREACHABLE)
    return Price(None, f"{instance_type} ({component}) is not in the price list of {region}")


def hourly_price(price_list, region: str, instance_type: str, component: str) -> Optional[float]:
    """The USD per hour of the first product that is exactly this (region,
    instance, component), from GetProducts' PriceList (JSON texts)."""
    for text in price_list:
        try:
            item = json.loads(text) if isinstance(text, str) else text
        except ValueError:
            continue
        product = item.get("product") if isinstance(item, dict) else None
        attributes = (product or {}).get("attributes") or {}
        if (attributes.get("regionCode"), attributes.get("instanceName")) != (region, instance_type) \
                or str(attributes.get(USE_ATTRIBUTE, "")).lower() != component.lower() \
                or (product or {}).get("productFamily", PRODUCT_FAMILY) != PRODUCT_FAMILY:
            continue
        for term in ((item.get("terms") or {}).get("OnDemand") or {}).values():
            for dimension in (term.get("priceDimensions") or {}).values():
                if str(dimension.get("unit", "")).lower() not in _HOURLY_UNITS:
                    continue
                try:
                    usd = float((dimension.get("pricePerUnit") or {}).get("USD"))
                except (TypeError, ValueError):
                    continue
                if usd > 0:
                    return usd
    return None


def _read(path: Path) -> Dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("prices"), dict):
        return {}
    return data["prices"]


def _write(path: Path, entries: Dict[str, Any]) -> None:
    """Kept whole or not at all; a cache that cannot be written only costs a lookup."""
    from . import owned

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        owned.write_atomic(path, (json.dumps({"format": CACHE_FORMAT, "prices": entries}, indent=1,
                                             sort_keys=True) + "\n").encode("utf-8"))
    except OSError:
        pass
