"""MQTT topic filter matching (MQTT 3.1.1 §4.7), so a message can be routed to the sensor that owns it."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


def valid_filter(filter: str) -> bool:
    """A non-empty filter whose `+` fill whole levels and whose `#` is alone in the last level."""
    if not filter or "\0" in filter:
        return False
    levels = filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def has_wildcard(filter: str) -> bool:
    """True when the filter can match more than one topic."""
    return "+" in filter or "#" in filter


def topic_matches(filter: str, topic: str) -> bool:
    """Does `topic` match the subscription `filter`? `+` is one level, `#` the rest including the parent.

    Wildcards in the first level do not match `$`-topics (`$SYS/...`). An invalid filter or a topic name
    that contains wildcards or is empty matches nothing.
    """
    if filter == topic:  # the common case: a sensor's exact topic
        return bool(topic) and "+" not in topic and "#" not in topic and "\0" not in topic
    if not valid_filter(filter) or not topic or "+" in topic or "#" in topic or "\0" in topic:
        return False
    wanted = filter.split("/")
    levels = topic.split("/")
    if topic.startswith("$") and wanted[0] in ("+", "#"):
        return False
    for i, want in enumerate(wanted):
        if want == "#":
            return True
        if i >= len(levels) or (want != "+" and want != levels[i]):
            return False
    return len(levels) == len(wanted)


class TopicIndex(Generic[T]):
    """Filters known in advance, matched against many topics: exact filters by one dict lookup, only
    the wildcard filters compared level by level. `match` returns the values in insertion order."""

    def __init__(self, entries: list[tuple[str, T]]) -> None:
        self._exact: dict[str, list[tuple[int, T]]] = {}
        self._wild: list[tuple[int, str, T]] = []
        for order, (filter, value) in enumerate(entries):
            if not valid_filter(filter):
                continue
            if has_wildcard(filter):
                self._wild.append((order, filter, value))
            else:
                self._exact.setdefault(filter, []).append((order, value))

    def match(self, topic: str) -> list[T]:
        if "+" in topic or "#" in topic or "\0" in topic:
            return []
        found = list(self._exact.get(topic, ()))
        found += [(order, value) for order, filter, value in self._wild if topic_matches(filter, topic)]
        if len(found) > 1:
            found.sort(key=lambda item: item[0])
        return [value for _, value in found]
