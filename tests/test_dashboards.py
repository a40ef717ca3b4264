"""The Grafana dashboards in dashboards/: valid JSON of Grafana's model, made by the code, provisioned
by files that name what exists, and every query run against an InfluxDB 1.6.7 filled by a real farm run
(tests/farmrun.py) the way Grafana would run it: each succeeds, returns data and names only
measurements, fields and tags the daemon wrote."""

from __future__ import annotations

import ast
import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML: a dependency of schemathesis (dev extra)

from dashboards import build
from dashboards.build import BOARDS, OUT, problems, render
from dashboards.influxql import DATASOURCE_UID, EXPRESSION_TYPE
from dashboards.schema import SCHEMA
from tests.conftest import OctoPrintFactory
from tests.farmrun import FarmRun, simulate
from tests.peers.octoprint import OctoPrintPeer
from tests.peers.servers import InfluxPeer, MosquittoPeer

PROVISIONING = Path(__file__).parents[1] / "dashboards" / "provisioning"
UIDS = {  # stable: links, bookmarks and Grafana's provisioning keep to them
    "overview.json": "farmctl-overview",
    "printer.json": "farmctl-printer",
    "jobs.json": "farmctl-jobs",
    "energy.json": "farmctl-energy",
    "material.json": "farmctl-material",
    "environment.json": "farmctl-environment",
}
INTERVAL_MS = 10_000  # $__interval: the datasource's timeInterval (the smallest Grafana uses)


def boards() -> dict[str, dict[str, Any]]:
    return {name: json.loads((OUT / name).read_text()) for name in BOARDS}


def test_each_dashboard_is_what_the_code_makes_and_reads_back_as_grafanas_model() -> None:
    for name, make in BOARDS.items():
        assert (OUT / name).read_text() == render(make), f"{name}: run python -m dashboards.build"
        assert problems(json.loads((OUT / name).read_text())) == [], name
    assert build.main(["--check"]) == 0  # and docs/grafana.md's schema table is made from the code's


def test_the_dashboards_name_only_the_schema_they_document() -> None:
    documented = {name: {*m.tags, *m.fields} for name, m in SCHEMA.items()}
    for name, board in boards().items():
        for target in targets(board):
            if target["datasource"]["uid"] != EXPRESSION_TYPE:
                assert names_used(target["query"], documented) == [], (name, target["query"])


def test_a_wrong_key_is_found() -> None:
    board = boards()["overview.json"]
    board["panels"][0]["targets"][0]["qeury"] = "SELECT 1"
    assert problems(board)
    board = boards()["energy.json"]
    board["panels"][0]["fieldConfig"]["defaults"]["unti"] = "watt"
    assert problems(board)


def test_uids_are_unique_and_stable_and_links_reach_every_dashboard() -> None:
    found = {name: board["uid"] for name, board in boards().items()}
    assert found == UIDS
    assert len(set(found.values())) == len(found)
    for board in boards().values():
        assert "farmctl" in board["tags"]
        assert [link["tags"] for link in board["links"]] == [["farmctl"]]  # a menu of them all
        ids = [panel["id"] for panel in board["panels"]]
        assert len(set(ids)) == len(ids), board["uid"]
        for panel in board["panels"]:  # a printer's series leads to its Printer dashboard
            for link in panel["fieldConfig"]["defaults"].get("links", []):
                target = re.match(r"/d/([\w-]+)\?", link["url"])
                assert target is not None, link
                assert target[1] in UIDS.values(), link


def test_provisioning_files_name_only_what_exists() -> None:
    sources = sorted((PROVISIONING / "datasources").glob("*.yaml"))
    assert [p.name for p in sources] == ["farmctl-influxdb1.yaml", "farmctl-influxdb2-influxql.yaml"]
    for path in sources:
        (source,) = yaml.safe_load(path.read_text())["datasources"]
        assert (source["uid"], source["type"], source["jsonData"]["version"]) == (
            DATASOURCE_UID,
            "influxdb",
            "InfluxQL",
        )
    (provider,) = yaml.safe_load((PROVISIONING / "dashboards" / "farmctl.yaml").read_text())["providers"]
    # The provider's folder is where docs/grafana.md copies dashboards/farmctl/ to.
    assert Path(provider["options"]["path"]).name == OUT.name
    assert sorted(p.name for p in OUT.glob("*.json")) == sorted(BOARDS)
    for board in boards().values():  # every query goes to the provisioned datasource
        for target in targets(board):
            assert target["datasource"]["uid"] in (DATASOURCE_UID, EXPRESSION_TYPE), target


def targets(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every query of a dashboard: its panels', its annotations' and its variables'."""
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == DATASOURCE_UID, panel["title"]
        assert panel["targets"], panel["title"]
        yield from panel["targets"]
    for annotation in board["annotations"]["list"]:
        yield annotation["target"]
    for variable in board["templating"]["list"]:
        yield {"query": variable["query"], "datasource": variable["datasource"], "refId": variable["name"]}


# --- every query against the farm run's InfluxDB ---------------------------------------------------


@dataclass
class Filled:
    influx: InfluxPeer
    run: FarmRun
    fields: dict[str, set[str]]  # measurement -> its field keys, as the daemon wrote them
    tags: dict[str, set[str]]  # and its tag keys

    @property
    def schema(self) -> dict[str, set[str]]:
        """Measurement -> the names a query may use on it."""
        return {m: self.fields.get(m, set()) | self.tags.get(m, set()) for m in {*self.fields, *self.tags}}


@pytest.fixture(scope="module")
def filled(
    _octoprint_peers: tuple[OctoPrintFactory, list[OctoPrintPeer]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Filled]:
    """One farm run for the module (about a minute): its InfluxDB stays up for the tests."""
    start, _ = _octoprint_peers
    tmp = tmp_path_factory.mktemp("farmrun")
    mosquitto = MosquittoPeer(tmp / "mosquitto")
    influx = InfluxPeer(tmp / "influxdb")
    mosquitto.start_and_wait()
    influx.start_and_wait()
    peers = start(2)
    try:
        run = asyncio.run(simulate(peers, mosquitto, influx, tmp))
    finally:
        for peer in peers:
            peer.stop()
        mosquitto.stop()
    try:
        yield Filled(influx, run, keys(influx, "SHOW FIELD KEYS"), keys(influx, "SHOW TAG KEYS"))
    finally:
        influx.stop()


def query(influx: InfluxPeer, text: str) -> dict[str, Any]:
    resp = httpx.get(f"{influx.url}/query", params={"db": "farm", "q": text}, timeout=30)
    assert resp.status_code == 200, (text, resp.text)
    result: dict[str, Any] = resp.json()["results"][0]
    assert "error" not in result, (text, result["error"])
    return result


def keys(influx: InfluxPeer, show: str) -> dict[str, set[str]]:
    """Each measurement's field or tag keys (`show`)."""
    return {s["name"]: {row[0] for row in s["values"]} for s in query(influx, show).get("series", [])}


def grafana_regex(values: list[str]) -> str:
    """A multi-value variable in an InfluxDB regex, as Grafana writes it: `(a|b)`, each escaped."""
    escaped = [re.sub(r"([\\^$*+?.()|\[\]{}/])", r"\\\1", v) for v in values]
    return "(" + "|".join(escaped) + ")"


def expand(text: str, variables: dict[str, list[str]], run: FarmRun) -> str:
    """Grafana's macros and the variables' values put into a query."""
    lo, hi = run.started_ns // 1_000_000 - 60_000, run.ended_ns // 1_000_000 + 60_000
    time_filter = f"time >= {lo}ms and time <= {hi}ms"
    text = text.replace("$__timeFilter", time_filter).replace("$timeFilter", time_filter)
    text = text.replace("$__interval_ms", str(INTERVAL_MS)).replace("$__interval", f"{INTERVAL_MS // 1000}s")
    for name in sorted(variables, key=len, reverse=True):  # $printer before a $print, say
        value = grafana_regex(variables[name])
        for form in (f"${{{name}}}", f"[[{name}]]", f"${name}"):
            text = text.replace(form, value)
    return text


# InfluxQL words a dashboard query may use outside quotes; anything else bare would be an unchecked name.
WORDS = {
    "select", "from", "where", "and", "or", "group", "by", "time", "fill", "none", "previous", "null",
    "as", "order", "desc", "asc", "limit", "show", "tag", "values", "with", "key", "mean", "sum", "last",
    "max", "min", "count", "median", "percentile", "integral", "spread",
}  # fmt: skip
QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
MACROS = re.compile(r"\$\w+|\$\{\w+\}|\[\[\w+\]\]")  # Grafana's, and the variables
LITERALS = re.compile(r"'(?:[^'\\]|\\.)*'|~\s*/(?:[^/\\]|\\.)*/")  # strings and =~ /regexes/


def names_used(text: str, known: dict[str, set[str]]) -> list[str]:
    """The measurements, fields and tags a query names that the daemon did not write."""
    bare = MACROS.sub(" ", QUOTED.sub(" ", LITERALS.sub(" ", text)))
    words = {w.lower() for w in re.findall(r"\b[A-Za-z_]\w*", bare)}  # not a duration's unit (1h)
    unknown = [f"bare word {w}" for w in sorted(words - WORDS)]
    measurements = re.findall(r'FROM "([^"]+)"', text)
    unknown += [f"measurement {m}" for m in measurements if m not in known]
    aliases = set(re.findall(r'AS "([^"]+)"', text))
    keys = set(measurements).union(*(known.get(m, set()) for m in measurements), aliases)
    unknown += [f"field or tag {n}" for n in QUOTED.findall(LITERALS.sub(" ", text)) if n not in keys]
    return unknown


def has_data(result: dict[str, Any]) -> bool:
    """Some series has a value other than its time."""
    for series in result.get("series", []):
        for row in series["values"]:
            if any(v is not None for v in row[1:]):
                return True
    return False


def variable_values(board: dict[str, Any], filled: Filled) -> dict[str, list[str]]:
    """Each variable's values from its own query, the variables before it put in (as Grafana does)."""
    values: dict[str, list[str]] = {}
    for variable in board["templating"]["list"]:
        text = expand(variable["query"], values, filled.run)
        (series,) = query(filled.influx, text)["series"]
        values[variable["name"]] = sorted(row[1] for row in series["values"])
        assert values[variable["name"]], text
    return values


@pytest.mark.parametrize("name", list(BOARDS))
def test_every_query_runs_on_what_the_daemon_wrote_and_returns_data(name: str, filled: Filled) -> None:
    board = boards()[name]
    variables = variable_values(board, filled)
    failures = []
    for target in targets(board):
        if target["datasource"]["uid"] == EXPRESSION_TYPE:
            continue  # math over the panel's other targets, which are run themselves
        text = target["query"]
        unknown = names_used(text, filled.schema)
        if unknown:
            failures.append(f"{target['refId']}: {text}\n  names the daemon does not write: {unknown}")
            continue
        try:
            result = query(filled.influx, expand(text, variables, filled.run))
        except AssertionError as exc:
            failures.append(f"{target['refId']}: {text}\n  failed: {exc}")
            continue
        if not has_data(result):
            failures.append(f"{target['refId']}: {text}\n  returned no data")
    assert not failures, "\n".join(failures)


def test_the_documented_schema_is_what_the_daemon_writes(filled: Filled) -> None:
    for name, measurement in SCHEMA.items():
        assert set(measurement.tags) <= filled.tags.get(name, set()), name
        assert set(measurement.fields) <= filled.fields.get(name, set()), name


def test_expressions_use_their_panels_queries() -> None:
    for board in boards().values():
        for panel in board["panels"]:
            refs = {t["refId"] for t in panel["targets"]}
            for target in panel["targets"]:
                if target["datasource"]["uid"] == EXPRESSION_TYPE:
                    used = set(re.findall(r"\$([A-Za-z_]\w*)", target["expression"]))
                    assert used, (panel["title"], target["expression"])
                    assert used <= refs, (panel["title"], target["expression"])


def test_the_queries_an_expression_joins_have_the_same_series(filled: Filled) -> None:
    """Grafana joins an expression's inputs on their tags: each must give one series per printer."""
    joined = 0
    for board in boards().values():
        variables = variable_values(board, filled)
        for panel in board["panels"]:
            inputs = [t for t in panel["targets"] if t["datasource"]["uid"] != EXPRESSION_TYPE]
            if len(inputs) == len(panel["targets"]):
                continue
            series = [
                {
                    tuple(sorted(s["tags"].items()))
                    for s in query(filled.influx, expand(t["query"], variables, filled.run))["series"]
                }
                for t in inputs
            ]
            assert series[0] == {(("printer", "p1"),), (("printer", "p2"),)}, panel["title"]
            assert all(s == series[0] for s in series), (panel["title"], series)
            joined += 1
    assert joined == 6


# What Grafana's math expressions use here: arithmetic and comparisons (1 when true, 0 when false).
MATH_NODES: tuple[type[ast.AST], ...] = (ast.Expression, ast.BinOp, ast.Compare, ast.Name, ast.Load)
MATH_NODES += (ast.Constant, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Lt, ast.LtE, ast.Gt, ast.GtE)


def evaluate(expression: str, values: dict[str, float]) -> float:
    """A math expression (`$A / $B * ($A <= $B)`) over numbers, as Grafana computes it."""
    tree = ast.parse(expression.replace("$", ""), mode="eval")
    assert all(isinstance(node, MATH_NODES) for node in ast.walk(tree)), expression
    # Only the nodes above, no builtins: the dashboard's own formula, not arbitrary code.
    return float(eval(compile(tree, "<expression>", "eval"), {"__builtins__": {}}, values))  # noqa: S307


def per_printer(panel: dict[str, Any], variables: dict[str, list[str]], filled: Filled) -> dict[str, float]:
    """Each printer's bar of a gauge panel: its expression over its queries, joined on the printer."""
    inputs: dict[str, dict[str, float]] = {}  # refId -> printer -> the query's value
    for target in panel["targets"]:
        if target["datasource"]["uid"] != EXPRESSION_TYPE:
            result = query(filled.influx, expand(target["query"], variables, filled.run))
            inputs[target["refId"]] = {s["tags"]["printer"]: s["values"][0][1] for s in result["series"]}
    (formula,) = [t["expression"] for t in panel["targets"] if t["datasource"]["uid"] == EXPRESSION_TYPE]
    printers = set.intersection(*(set(v) for v in inputs.values()))
    return {p: evaluate(formula, {ref: v[p] for ref, v in inputs.items()}) for p in printers}


def test_performance_and_oee_per_printer_are_the_utilisation_reports(filled: Filled) -> None:
    """The overview's performance is the daemon's (controller/accounting/oee.py) for the same prints,
    capped at 1, and its OEE is availability x performance x quality as its other bars show them."""
    board = boards()["overview.json"]
    variables = variable_values(board, filled)
    bars = {p["title"]: per_printer(p, variables, filled) for p in board["panels"] if p["type"] == "bargauge"}
    performance = bars["Performance per printer"]
    assert performance == pytest.approx(filled.run.performance)
    assert performance["p1"] == 1.0  # its prints beat their estimate: capped
    assert 0 < performance["p2"] < 1
    availability, quality = bars["Availability per printer"], bars["Quality per printer"]
    assert bars["OEE per printer"] == pytest.approx(
        {p: availability[p] * performance[p] * quality[p] for p in ("p1", "p2")}
    )
    assert bars["OEE per printer"]["p2"] < quality["p2"] * availability["p2"]  # performance counts


def test_a_name_the_daemon_does_not_write_is_caught(filled: Filled) -> None:
    """The checks above would fail for a misspelt field, tag or measurement."""
    wrong = [
        'SELECT mean("power_watts") FROM "power" WHERE $timeFilter',
        'SELECT mean("power_w") FROM "power" WHERE "room" =~ /^x$/ AND $timeFilter',
        'SELECT mean("temperature_c") FROM "climate" WHERE $timeFilter',
        "SELECT mean(power_watts) FROM power WHERE $timeFilter",
    ]
    for text in wrong:
        assert names_used(text, filled.schema), text
    assert names_used('SELECT mean("power_w") FROM "power" WHERE $timeFilter', filled.schema) == []
    empty = query(
        filled.influx, expand('SELECT mean("power_watts") FROM "power" WHERE $timeFilter', {}, filled.run)
    )
    assert not has_data(empty)
