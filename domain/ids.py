"""Deterministic aggregate ids: the same natural key always names the same stream."""

from uuid import UUID, uuid5

_NAMESPACE = UUID("6f1c2a8e-3b7d-4c1e-9a55-0d7e2b9c4f10")


def event_record_id(environment_id: str, event_id: str) -> UUID:
    return uuid5(_NAMESPACE, f"event:{environment_id}:{event_id}")


def endpoint_id(environment_id: str, slug: str) -> UUID:
    return uuid5(_NAMESPACE, f"endpoint:{environment_id}:{slug}")


def schedule_id(environment_id: str, key: str) -> UUID:
    return uuid5(_NAMESPACE, f"schedule:{environment_id}:{key}")


def queue_id(environment_id: str, name: str) -> UUID:
    return uuid5(_NAMESPACE, f"queue:{environment_id}:{name}")
