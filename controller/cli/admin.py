"""`farmctl admin tokens|members`: API tokens and members an admin manages while the daemon runs, through
the API (an admin token: --token-file). Those of farmctl.toml are listed and change only with the file."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from controller.cli.app import app, epilog
from controller.cli.common import (
    EX_DATAERR,
    EX_USAGE,
    ApiClient,
    ApiOpt,
    ConfigOpt,
    JsonOpt,
    TokenOpt,
    fail,
    segment,
)
from controller.config import Role

admin_app = typer.Typer(
    help="Tokens and members, changed while the daemon runs (admin token).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
tokens_app = typer.Typer(
    help="API tokens: list them (the default), add one (its secret is printed once), revoke one.",
    epilog=epilog("farmctl admin tokens add frontdesk --role operator --token-file admin.token"),
    rich_markup_mode=None,
)
members_app = typer.Typer(
    help="Members (job owners): list them (the default), add, change quotas or password, remove.",
    epilog=epilog("farmctl admin members add dana --quota-g 500 --password-stdin --token-file admin.token"),
    rich_markup_mode=None,
)
app.add_typer(admin_app, name="admin")
admin_app.add_typer(tokens_app, name="tokens")
admin_app.add_typer(members_app, name="members")

NameArg = Annotated[str, typer.Argument(help="The token's or member's name")]
QuotaG = Annotated[float | None, typer.Option("--quota-g", help="Filament grams per calendar month")]
QuotaCost = Annotated[float | None, typer.Option("--quota-cost", help="Cost per calendar month")]
PasswordStdin = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the web page password from the first line of stdin"),
]
_TOKENS = "/api/v1/admin/tokens"
_MEMBERS = "/api/v1/admin/members"


def _send(client: ApiClient, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    if body is None:
        return client.request(method, path)
    return client.request(
        method, path, content=iter([json.dumps(body).encode()]), headers={"Content-Type": "application/json"}
    )


def _password() -> str:
    # From stdin, never an argument: arguments show in `ps` and the shell's history.
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise fail("--password-stdin: stdin held no password", EX_DATAERR)
    return line


def _origin(item: dict[str, Any]) -> str:
    return "farmctl.toml" if item["source"] == "config" else f"added by {item.get('created_by')}"


def _list(client: ApiClient, path: str, key: str, line: Callable[[dict[str, Any]], str], json_: bool) -> None:
    """The tokens or members the daemon lists, as JSON or one tab-separated line each."""
    entries = client.get(path)[key]
    if json_:
        typer.echo(json.dumps(entries, indent=2))
        return
    for entry in entries:
        typer.echo(line(entry))


def _token_line(t: dict[str, Any]) -> str:
    return f"{t['name']}\t{t['role']}\t{_origin(t)}"


def _list_tokens(client: ApiClient, json_: bool) -> None:
    _list(client, _TOKENS, "tokens", _token_line, json_)


@tokens_app.callback(invoke_without_command=True)
def tokens(
    ctx: typer.Context,
    config: ConfigOpt = None,
    api: ApiOpt = None,
    token_file: TokenOpt = None,
    json_: JsonOpt = False,
) -> None:
    """API tokens; without a command, list them."""
    if ctx.invoked_subcommand is None:
        _list_tokens(ApiClient(config, api, token_file), json_)


@tokens_app.command("list", epilog=epilog("farmctl admin tokens list"))
def tokens_list(
    config: ConfigOpt = None, api: ApiOpt = None, token_file: TokenOpt = None, json_: JsonOpt = False
) -> None:
    """Every token with its role and where it comes from; never a secret (admin)."""
    _list_tokens(ApiClient(config, api, token_file), json_)


@tokens_app.command("add", epilog=epilog("farmctl admin tokens add frontdesk --role operator"))
def tokens_add(
    name: NameArg,
    role: Annotated[Role, typer.Option("--role", "-r", help="viewer, operator or admin")],
    config: ConfigOpt = None,
    api: ApiOpt = None,
    token_file: TokenOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Make a token; its secret is printed once on stdout, the daemon keeps only its hash (admin)."""
    made = _send(ApiClient(config, api, token_file), "POST", _TOKENS, {"name": name, "role": role.value})
    if json_:
        typer.echo(json.dumps(made, indent=2))
        return
    print(f"token {made['name']} ({made['role']}) made; its secret, shown this once:", file=sys.stderr)
    typer.echo(made["secret"])  # alone on stdout: `farmctl admin tokens add x -r viewer > x.token`


@tokens_app.command("revoke", epilog=epilog("farmctl admin tokens revoke frontdesk"))
def tokens_revoke(
    name: NameArg, config: ConfigOpt = None, api: ApiOpt = None, token_file: TokenOpt = None
) -> None:
    """Revoke a token added at run time: it is refused from now on, its web sessions end (admin)."""
    gone = _send(ApiClient(config, api, token_file), "DELETE", f"{_TOKENS}/{segment(name)}")
    typer.echo(f"token {gone['name']} revoked")


def _member_line(m: dict[str, Any]) -> str:
    quota_g = "-" if m.get("quota_g") is None else f"{m['quota_g']:g} g"
    quota_cost = "-" if m.get("quota_cost") is None else f"{m['quota_cost']:g}"
    password = "password" if m["password"] else "no password"
    return f"{m['name']}\t{quota_g}\t{quota_cost}\t{password}\t{_origin(m)}"


def _list_members(client: ApiClient, json_: bool) -> None:
    _list(client, _MEMBERS, "members", _member_line, json_)


@members_app.callback(invoke_without_command=True)
def members(
    ctx: typer.Context,
    config: ConfigOpt = None,
    api: ApiOpt = None,
    token_file: TokenOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Members; without a command, list them."""
    if ctx.invoked_subcommand is None:
        _list_members(ApiClient(config, api, token_file), json_)


@members_app.command("list", epilog=epilog("farmctl admin members list"))
def members_list(
    config: ConfigOpt = None, api: ApiOpt = None, token_file: TokenOpt = None, json_: JsonOpt = False
) -> None:
    """Every member: quotas (grams, cost per month), whether they can sign in, where defined (admin)."""
    _list_members(ApiClient(config, api, token_file), json_)


@members_app.command(
    "add", epilog=epilog("echo 'a long passphrase' | farmctl admin members add dana --password-stdin")
)
def members_add(
    name: NameArg,
    quota_g: QuotaG = None,
    quota_cost: QuotaCost = None,
    password_stdin: PasswordStdin = False,
    config: ConfigOpt = None,
    api: ApiOpt = None,
    token_file: TokenOpt = None,
) -> None:
    """Add a member (a job owner with quotas; with a password they sign in on the page) (admin)."""
    client = ApiClient(config, api, token_file)
    body: dict[str, Any] = {"name": name, "quota_g": quota_g, "quota_cost": quota_cost}
    if password_stdin:
        body["password"] = _password()
    typer.echo(_member_line(_send(client, "POST", _MEMBERS, body)))


@members_app.command("set", epilog=epilog("farmctl admin members set dana --quota-g 750 --no-quota-cost"))
def members_set(
    name: NameArg,
    quota_g: QuotaG = None,
    quota_cost: QuotaCost = None,
    no_quota_g: Annotated[bool, typer.Option("--no-quota-g", help="No grams limit")] = False,
    no_quota_cost: Annotated[bool, typer.Option("--no-quota-cost", help="No cost limit")] = False,
    password_stdin: PasswordStdin = False,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="The member can no longer sign in")
    ] = False,
    config: ConfigOpt = None,
    api: ApiOpt = None,
    token_file: TokenOpt = None,
) -> None:
    """Change a member added at run time; what is not given stays (admin)."""
    body: dict[str, Any] = {}
    for key, value, clear in (("quota_g", quota_g, no_quota_g), ("quota_cost", quota_cost, no_quota_cost)):
        if value is not None and clear:
            raise fail(f"--{key.replace('_', '-')} and --no-{key.replace('_', '-')} contradict", EX_USAGE)
        if value is not None or clear:
            body[key] = value
    if password_stdin and no_password:
        raise fail("--password-stdin and --no-password contradict", EX_USAGE)
    if password_stdin or no_password:
        body["password"] = _password() if password_stdin else None
    if not body:
        raise fail(
            "nothing to change: give --quota-g, --quota-cost, --password-stdin or a --no-… option", EX_USAGE
        )
    client = ApiClient(config, api, token_file)
    typer.echo(_member_line(_send(client, "PATCH", f"{_MEMBERS}/{segment(name)}", body)))


@members_app.command("remove", epilog=epilog("farmctl admin members remove dana"))
def members_remove(
    name: NameArg, config: ConfigOpt = None, api: ApiOpt = None, token_file: TokenOpt = None
) -> None:
    """Remove a member added at run time; their jobs keep the owner name (admin)."""
    gone = _send(ApiClient(config, api, token_file), "DELETE", f"{_MEMBERS}/{segment(name)}")
    typer.echo(f"member {gone['name']} removed")
