"""What makes two results' data the same, so that only like is compared with like."""

from __future__ import annotations

from typing import Any


def data_key(source_id: str | None, val: dict[str, Any] | None) -> tuple | None:
    """What makes two results' data the same: the raw source (its id names the content hash
    and code version, and every tier built from it shares it) and the validation decision
    days. Tier files carry one id per file, so together they count as one source."""
    if not source_id:
        return None
    source = "tier files" if source_id.startswith("tier_file:") else source_id
    val = val or {}
    return source, val.get("first_decision"), val.get("last_decision")


def record_data_key(record: dict[str, Any]) -> tuple | None:
    data = record.get("data") or {}
    return data_key(data.get("source_id"), (data.get("splits") or {}).get("val"))


def describe_data(key: tuple | None) -> str:
    if key is None:
        return "unknown data"
    source, first, last = key
    return f"{source.split('|')[0]}, val decision days {first} to {last}"
