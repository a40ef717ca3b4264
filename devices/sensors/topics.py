"""MQTT topic filter matching (MQTT 3.1.1 §4.7), so a message can be routed to the sensor that owns it."""

from __future__ import annotations


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
