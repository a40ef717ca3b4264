"""An InfluxQL query as a Grafana panel target or annotation.

grafana-foundation-sdk has no InfluxDB query type (its generated models cover Prometheus, Loki, …), so
this is ours, shaped as Grafana's InfluxDB datasource stores a raw InfluxQL query (`rawQuery: true`), and
registered with the SDK's runtime so `Dashboard.from_json` reads it back as this type.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

DATASOURCE_TYPE = "influxdb"
# The uid both provisioned datasource variants carry (dashboards/provisioning/datasources/).
DATASOURCE_UID = "farmctl-influxdb"
DATASOURCE = DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)
EXPRESSION_TYPE = "__expr__"  # Grafana's server-side expressions (math over other targets)

ResultFormat = Literal["time_series", "table"]

# JSON key for each field (Grafana's InfluxQuery names).
_KEYS = {
    "ref_id": "refId",
    "query": "query",
    "raw_query": "rawQuery",
    "result_format": "resultFormat",
    "alias": "alias",
    "hide": "hide",
    "text_column": "textColumn",
    "tags_column": "tagsColumn",
}


@dataclass
class InfluxQuery(cogvariants.Dataquery):
    """One raw InfluxQL query; `text_column`/`tags_column` only for an annotation."""

    ref_id: str = "A"
    query: str = ""
    raw_query: bool = True
    result_format: ResultFormat = "time_series"
    alias: str | None = None
    hide: bool | None = None
    text_column: str | None = None
    tags_column: str | None = None
    datasource: DataSourceRef = field(
        default_factory=lambda: DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)
    )

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"datasource": self.datasource.to_json()}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "datasource" and value is not None:
                out[_KEYS[f.name]] = value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        known = {key: name for name, key in _KEYS.items()}
        unknown = set(data) - set(known) - {"datasource"}
        if unknown:
            raise ValueError(f"not an InfluxQL target key: {', '.join(sorted(unknown))}")
        args: dict[str, Any] = {known[k]: v for k, v in data.items() if k in known}
        if "datasource" in data:
            args["datasource"] = DataSourceRef.from_json(data["datasource"])
        return cls(**args)


class InfluxQL(cogbuilder.Builder[InfluxQuery]):
    """A panel target: `InfluxQL("SELECT …").alias("$tag_printer")`."""

    def __init__(self, query: str, ref_id: str = "A") -> None:
        self._internal = InfluxQuery(ref_id=ref_id, query=query)

    def build(self) -> InfluxQuery:
        return self._internal

    def alias(self, alias: str) -> Self:
        self._internal.alias = alias
        return self

    def table(self) -> Self:
        """Rows as a table (one column per field or selected tag) instead of series."""
        self._internal.result_format = "table"
        return self

    def hidden(self) -> Self:
        """An input of an expression, not drawn itself."""
        self._internal.hide = True
        return self


def _target(data: dict[str, Any]) -> cogvariants.Dataquery:
    # The SDK picks a target's reader by its panel's datasource: an expression in an InfluxDB panel
    # (one with a datasource of its own) is read as an expression.
    if (data.get("datasource") or {}).get("type") == EXPRESSION_TYPE:
        return cogruntime.dataquery_from_json(data, EXPRESSION_TYPE)
    return InfluxQuery.from_json(data)


def register() -> None:
    """Let the SDK's `from_json` read panels' options and expressions as its types, and InfluxDB
    targets as InfluxQuery."""
    plugins.register_default_plugins()
    cogruntime.register_dataquery_variant(
        cogruntime.DataqueryConfig(identifier=DATASOURCE_TYPE, from_json_hook=_target)
    )


register()
