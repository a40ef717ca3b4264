"""The OpenAPI document is the API's manual, in OctoPrint's style: every operation says what it does,
the role it needs (and the daemon enforces that role), an example request and answer, and every status
it can answer; every example is valid against its own schema; /docs shows it without the internet."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import jsonschema_rs  # schemathesis' validator (dev extra): JSON Schema 2020-12, as OpenAPI 3.1 uses
import pytest
from fastapi import FastAPI

from controller.api.app import create_app
from controller.fleet.coordinator import Fleet
from controller.jobs.files import FileStore
from controller.jobs.queue import JobQueue
from controller.store import AsyncStore, Store
from tests.farm import TOKENS
from tests.helpers import closed_port_printers, config_for

ROLES = ["none", "viewer", "operator", "admin"]
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
BASE = "http://farm"
_ROLE_LINE = re.compile(r"Role: (none|viewer|operator|admin)\b")


@dataclass
class Served:
    app: FastAPI
    client: httpx.AsyncClient  # no token
    tokens: dict[str, str]  # role -> a token of that role
    document: dict[str, Any]


@contextlib.asynccontextmanager
async def _served(tmp_path: Path) -> AsyncIterator[Served]:
    """The daemon's app as create_app builds it, called in process; printers no one answers for."""
    config = config_for(tmp_path, closed_port_printers(1), tokens=TOKENS)
    secrets = tmp_path / "etc" / "secrets"
    tokens = {role: (secrets / f"{name}.token").read_text().strip() for name, role in TOKENS.items()}
    store = AsyncStore(Store(config.controller.state_dir / "farmctl.db"))
    try:
        async with aiohttp.ClientSession() as session:
            fleet = Fleet(config.printers, config.controller, session, beds={})
            queue = JobQueue(config, store, FileStore(config.controller.state_dir / "files"), fleet)
            app = create_app(config, queue)
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url=BASE, timeout=30) as client:
                yield Served(app, client, tokens, app.openapi())
    finally:
        store.close()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with _served(tmp_path) as it:
        yield it


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        *_, kind, name = schema["$ref"].split("/")
        schema = document["components"][kind][name]
    return schema


def _has_example(document: dict[str, Any], carrier: dict[str, Any]) -> bool:
    """A media type or parameter with an example of its own or in its (referenced) schema."""
    if carrier.get("example") is not None or carrier.get("examples"):
        return True
    schema = carrier.get("schema", {})
    return bool(schema.get("examples") or _resolve(document, schema).get("examples"))


def _role(operation: dict[str, Any]) -> str:
    last = operation.get("description", "").strip().splitlines()[-1:] or [""]
    found = _ROLE_LINE.search(last[0])
    return found[1] if found else "missing"


def _sample_path(path: str, operation: dict[str, Any]) -> str:
    """The path with each path parameter replaced by its documented example."""
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            named = [example["value"] for example in parameter.get("examples", {}).values()]
            value = parameter.get(
                "example", (named or parameter.get("schema", {}).get("examples") or ["x"])[0]
            )
            path = path.replace("{" + parameter["name"] + "}", str(value))
    return path


def _problems(document: dict[str, Any], method: str, path: str, operation: dict[str, Any]) -> list[str]:
    """What the operation's documentation lacks, in words."""
    found: list[str] = []
    auto = " ".join(w.capitalize() for w in operation.get("operationId", "").split("_api_")[0].split("_"))
    summary = operation.get("summary", "")
    if not summary or summary == auto:
        found.append(f"summary {summary!r} is missing or FastAPI's from the function name")
    if not operation.get("description", "").strip():
        found.append("no description")
    role = _role(operation)
    responses = operation["responses"]
    if role == "missing":
        found.append("the description's last line does not say `Role: none|viewer|operator|admin`")
    elif role == "none":
        found += [f"documents {code} but needs no token" for code in ("401", "403") if code in responses]
        if operation.get("security"):
            found.append("needs no token but lists a security scheme")
    else:
        if "401" not in responses:
            found.append("needs a token but does not document 401")
        if role == "viewer" and "403" in responses:
            found.append("documents 403, which a viewer route never answers (every token is a viewer)")
        if role in ("operator", "admin") and "403" not in responses:
            found.append(f"needs {role} but does not document 403")
    for code, answer in responses.items():
        if not answer.get("description", "").strip():
            found.append(f"{code} has no description")
        elif not code.startswith("2") and answer["description"] in (
            "Validation Error",
            "Successful Response",
        ):
            found.append(f"{code} has FastAPI's generic description")
        if not code.startswith("2"):
            schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
            if _resolve(document, schema).get("title") != "ErrorOut":
                found.append(f"{code} does not answer the one error body (ErrorOut)")
    success = sorted(code for code in responses if code.startswith("2"))
    if not success:
        found.append("no success status")
    else:
        content = responses[success[0]].get("content", {})
        if not content or not all(_has_example(document, media) for media in content.values()):
            found.append(f"{success[0]} has no example answer")
    parameters = operation.get("parameters", [])
    for parameter in parameters:
        # On the parameter itself: Swagger UI offers those to fill in, not its schema's.
        if parameter.get("example") is None and not parameter.get("examples"):
            found.append(f"parameter {parameter['name']} has no example")
        if not parameter.get("description"):
            found.append(f"parameter {parameter['name']} has no description")
    body = operation.get("requestBody")
    if body is not None:
        if not all(_has_example(document, media) for media in body["content"].values()):
            found.append("the request body has no example")
        if "application/json" in body["content"] and "400" not in responses:
            found.append("takes JSON but does not document 400 (a body that is not UTF-8)")
    if (parameters or body is not None) and "422" not in responses:
        found.append("takes input but does not document 422")
    if any(p["in"] == "path" for p in parameters) and "404" not in responses:
        found.append("names a resource in its path but does not document 404")
    return [f"{method.upper()} {path}: {problem}" for problem in found]


async def test_every_operation_is_documented_in_octoprint_style(served: Served) -> None:
    doc = served.document
    problems = [p for method, path, op in _operations(doc) for p in _problems(doc, method, path, op)]
    assert not problems, "\n".join(problems)


async def test_the_event_stream_is_in_the_document(served: Served) -> None:
    stream = served.document["paths"]["/api/v1/events"]["get"]
    media = stream["responses"]["200"]["content"]["text/event-stream"]
    example = media["example"]
    assert example.startswith("retry: ")
    assert "event: printer\ndata: {" in example
    assert "event: job\ndata: {" in example
    assert ": keep-alive" in example
    for word in ("snapshot", "keep-alive", "reconnect", "503"):
        assert word in stream["description"], word


def _examples(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any], Any]]:
    """Every (place, schema, example) in the document: schema `examples`, and the `example` and
    `examples` of media types and parameters."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _examples(item, f"{where}/{index}")
        return
    if not isinstance(node, dict):
        return
    examples = node.get("examples")
    if isinstance(examples, list):  # a schema's own examples
        for index, value in enumerate(examples):
            yield f"{where}/examples/{index}", node, value
    elif isinstance(examples, dict) and "schema" in node:  # a media type's or parameter's named examples
        for name, named in examples.items():
            yield f"{where}/examples/{name}", node["schema"], named["value"]
    if "example" in node and "schema" in node:
        yield f"{where}/example", node["schema"], node["example"]
    for key, value in node.items():
        if key not in ("examples", "example"):
            yield from _examples(value, f"{where}/{key}")


def _closed(node: Any) -> Any:
    """`node` with every object schema closed to properties it does not list, so an example with a
    misspelt field fails (pydantic leaves models open)."""
    if isinstance(node, list):
        return [_closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    closed = {key: _closed(value) for key, value in node.items()}
    if isinstance(node.get("properties"), dict) and "additionalProperties" not in node:
        closed["additionalProperties"] = False
    return closed


async def test_every_example_is_valid_against_its_schema(served: Served) -> None:
    document = served.document
    components = _closed(document["components"])
    seen, invalid = 0, []
    for where, schema, value in _examples(document):
        seen += 1
        # The document's components sit beside the schema, so its #/components/... references resolve.
        validator = jsonschema_rs.Draft202012Validator(
            {**_closed(schema), "components": components}, validate_formats=True
        )
        invalid += [f"{where}: {error.message}" for error in validator.iter_errors(value)]
    assert seen > 100, seen  # it did look
    assert not invalid, "\n".join(invalid)


async def test_the_role_each_operation_names_is_the_one_the_daemon_enforces(served: Served) -> None:
    # Only calls the daemon must refuse are made: nothing is queued, cancelled or changed.
    wrong = []
    for method, path, operation in _operations(served.document):
        role = _role(operation)
        url = _sample_path(path, operation)
        refused = await served.client.request(method, url)
        if (refused.status_code == 401) != (role != "none"):
            wrong.append(f"{method.upper()} {path} (role {role}) without a token: {refused.status_code}")
        for below in ROLES[1 : ROLES.index(role)] if role in ROLES else []:
            headers = {"Authorization": f"Bearer {served.tokens[below]}"}
            answer = await served.client.request(method, url, headers=headers)
            if answer.status_code != 403:
                wrong.append(f"{method.upper()} {path} (role {role}) as {below}: {answer.status_code}")
    assert not wrong, "\n".join(wrong)


async def test_the_served_document_is_the_apps_and_docs_load_nothing_from_outside(served: Served) -> None:
    token = {"Authorization": f"Bearer {served.tokens['viewer']}"}
    live = await served.client.get("/openapi.json", headers=token)
    assert live.status_code == 200
    assert live.json() == served.document
    refs = re.findall(r'"\$ref":\s*"([^"]*)"', live.text)
    assert refs
    assert all(ref.startswith("#/") for ref in refs), [r for r in refs if not r.startswith("#/")]
    page = await served.client.get("/docs", headers=token)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    outside = [url for url in re.findall(r"https?://[^\s'\"<>)]+", page.text) if not url.startswith(BASE)]
    assert not outside, outside
    for asset in re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text):
        assert (await served.client.get(asset, headers=token)).status_code == 200, asset
