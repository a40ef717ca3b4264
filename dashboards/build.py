"""Write the dashboards' JSON from code: `python -m dashboards.build` (or `--check`: fail if a file is not
what the code makes, as CI would, so a changed query is a reviewed diff of both)."""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import farm, schema, usage
from dashboards.influxql import InfluxQuery

# The folder Grafana's dashboard provider reads (provisioning/dashboards/farmctl.yaml names it).
OUT = Path(__file__).parent / "farmctl"
DOC = Path(__file__).parents[1] / "docs" / "grafana.md"  # its schema table is made from schema.SCHEMA

BOARDS: dict[str, Callable[[], dash.Dashboard]] = {
    "overview.json": farm.overview,
    "printer.json": farm.printer,
    "jobs.json": farm.jobs,
    "energy.json": usage.energy,
    "material.json": usage.material,
    "environment.json": usage.environment,
}


def render(make: Callable[[], dash.Dashboard]) -> str:
    """A dashboard as its JSON file's text: sorted keys, two-space indent, so diffs stay small."""
    data = json.loads(json.dumps(make().build(), cls=JSONEncoder))
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def problems(data: dict[str, Any]) -> list[str]:
    """What in a dashboard's JSON the SDK's models do not read back as written ([] when it is valid).

    Grafana's dashboard model (grafana-foundation-sdk) reads the whole dashboard; InfluxDB annotation
    targets, which that model types as Grafana's built-in ones, are read as our InfluxQuery."""
    found: list[str] = []
    rest = copy.deepcopy(data)
    for i, annotation in enumerate(rest.get("annotations", {}).get("list", [])):
        target = annotation.pop("target", None)
        if target is not None:
            try:
                if InfluxQuery.from_json(target).to_json() != target:
                    found.append(f"annotation {i}: target does not read back")
            except (TypeError, ValueError) as exc:
                found.append(f"annotation {i}: {exc}")
    try:
        again = json.loads(json.dumps(Dashboard.from_json(rest), cls=JSONEncoder))
    except (KeyError, TypeError, ValueError) as exc:
        return [*found, f"not a dashboard: {exc!r}"]
    if again != rest:
        found.append(f"{_first_difference(rest, again)} does not read back as written (unknown or misplaced)")
    return found


def _first_difference(a: object, b: object, path: str = "") -> str:
    """The JSON path where `a` and `b` first differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{path}.{key}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{path}[{i}]")
    return path or "."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if a file differs")
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    files = {OUT / name: render(make) for name, make in BOARDS.items()}
    files[DOC] = schema.with_table(DOC.read_text())
    stale = [path for path, text in files.items() if not path.exists() or path.read_text() != text]
    if args.check:
        if stale:
            names = ", ".join(str(p) for p in stale)
            print(f"out of date (run python -m dashboards.build): {names}", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(files[path])
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
