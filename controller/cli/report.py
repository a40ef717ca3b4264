"""`farmctl report` (usage for billing, or utilisation) and `farmctl passport` (verify the ledger)."""

from __future__ import annotations

import csv
import json
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from controller.accounting.passport import Chain, canonical
from controller.cli import utilisation as utilisation_view
from controller.cli.app import app, epilog
from controller.cli.common import (
    EX_PROTOCOL,
    EX_USAGE,
    ApiClient,
    ApiOpt,
    ConfigOpt,
    JsonOpt,
    TokenOpt,
    console,
    fail,
)

USAGE_PATH = "/api/v1/reports/usage"
LEDGER_PATH = "/api/v1/passports"
LEDGER_PAGE = 500  # records per request while verifying; the API allows at most 1000
# A row's figures in the API's order: the CSV's columns after the key.
FIGURES = ("jobs", "print_hours", "filament_g", "energy_kwh", "cost", "co2_g", "waste_g", "waste_kwh")

passport_app = typer.Typer(
    help="Print passports: one record per finished print, chained by hash (tamper-evident).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(passport_app, name="passport")


def _params(since: str | None, until: str | None, group_by: str) -> dict[str, str]:
    params = {"group_by": group_by}
    if since:
        params["since"] = since
    if until:
        params["until"] = until
    return params


def _show_usage(answer: dict[str, Any], *, as_csv: bool) -> None:
    group_by, currency = answer["group_by"], answer["currency"]
    if as_csv:
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow((group_by, *FIGURES, "currency"))
        for row in answer["rows"]:
            out.writerow((row["key"], *(row[f] for f in FIGURES), currency))
        return
    since, until = (answer[k][:16].replace("T", " ") for k in ("since", "until"))
    title = f"usage by {group_by}, {since} to {until} ({answer['timezone']})"
    table = Table(
        group_by, "jobs", "hours", "filament g", "kWh", f"cost {currency}", "CO2 kg", "waste g", "waste kWh",
        title=escape(title), show_footer=bool(answer["rows"]),
    )  # fmt: skip
    for column in table.columns[1:]:
        column.justify = "right"
    total = answer["total"]
    footers = ("total", str(total["jobs"]), *_figures(total))
    for column, footer in zip(table.columns, footers, strict=True):
        column.footer = footer
    for row in answer["rows"]:
        table.add_row(escape(row["key"]), str(row["jobs"]), *_figures(row))
    console().print(table)


def _figures(row: dict[str, Any]) -> tuple[str, ...]:
    return (
        f"{row['print_hours']:.1f}",
        f"{row['filament_g']:.0f}",
        f"{row['energy_kwh']:.2f}",
        f"{row['cost']:.2f}",
        f"{row['co2_g'] / 1000:.2f}",
        f"{row['waste_g']:.0f}",
        f"{row['waste_kwh']:.2f}",
    )


@app.command(
    epilog=epilog("farmctl report --by owner --since 2026-11-01 --until 2026-12-01 --csv > november.csv")
)
def report(
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="owner | printer | material | day | month (default owner); "
            "with --utilisation printer | group | farm (default printer)",
            show_default=False,
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Start: 2026-11-01 or 2026-11-01T08:00, in the farm's zone (default: this month)"),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="End, exclusive (default: the next month's start)")
    ] = None,
    utilisation: Annotated[
        bool, typer.Option("--utilisation", help="Availability, OEE and bed-clear waits instead of usage")
    ] = False,
    csv_: Annotated[bool, typer.Option("--csv", help="Print CSV (for billing) instead of a table")] = False,
    config: ConfigOpt = None,
    api: ApiOpt = None,
    token_file: TokenOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Usage of the jobs that finished in a period, one row per owner, printer, material, day or month:
    jobs, print hours, grams, kWh, cost, CO2 and waste (viewer)."""
    if csv_ and json_:
        raise fail("--csv and --json: choose one", EX_USAGE)
    client = ApiClient(config, api, token_file)
    if utilisation:
        query = utilisation_view.query_params(since, until, by or "printer")
        answer = client.get(utilisation_view.PATH, params=query)
        utilisation_view.show(answer["rows"], as_json=json_, as_csv=csv_)
        return
    answer = client.get(USAGE_PATH, params=_params(since, until, by or "owner"))
    if json_:
        typer.echo(json.dumps(answer, indent=2))
        return
    _show_usage(answer, as_csv=csv_)


@passport_app.command("show", epilog=epilog("farmctl passport show 17"))
def passport_show(
    job_id: Annotated[int, typer.Argument(metavar="ID", help="Job whose passport to print")],
    config: ConfigOpt = None,
    api: ApiOpt = None,
    token_file: TokenOpt = None,
) -> None:
    """A finished job's print passport as JSON: its record, hash and place in the ledger (viewer)."""
    typer.echo(
        json.dumps(ApiClient(config, api, token_file).get(f"/api/v1/jobs/{job_id}/passport"), indent=2)
    )


@passport_app.command("verify", epilog=epilog("farmctl passport verify"))
def passport_verify(
    config: ConfigOpt = None, api: ApiOpt = None, token_file: TokenOpt = None, json_: JsonOpt = False
) -> None:
    """Check every passport's hash and the chain from the first to the newest; exit 1 naming the first
    broken record. Keep the newest hash it prints: a ledger rewritten from some record on ends with
    another one (viewer)."""
    client = ApiClient(config, api, token_file)
    chain, after = Chain(), 0
    problem: str | None = None
    while problem is None:
        page = client.get(LEDGER_PATH, params={"after": str(after), "limit": str(LEDGER_PAGE)})
        try:
            for entry in page["passports"]:
                text = canonical(entry["record"])
                problem = chain.check(entry["seq"], text, entry["prev_hash"], entry["hash"])
                if problem is not None:
                    break
            following = page["next_after"]
        except (KeyError, TypeError, ValueError):
            raise fail(
                f"{LEDGER_PATH} did not answer with a ledger page: is it a farmctl daemon?", EX_PROTOCOL
            ) from None
        if following is None:
            break
        if not isinstance(following, int) or following <= after:
            raise fail(f"{LEDGER_PATH} did not move on past seq {after}", EX_PROTOCOL)
        after = following
    if json_:
        typer.echo(
            json.dumps(
                {"ok": problem is None, "checked": chain.count, "head": chain.head, "problem": problem}
            )
        )
    if problem is not None:
        raise fail(f"passport ledger broken at {problem}; the {chain.count} records before it are sound", 1)
    if not json_:
        typer.echo(f"OK: {chain.count} passports, every hash and link sound; newest hash {chain.head}")
