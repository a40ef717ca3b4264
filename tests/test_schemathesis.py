"""Schemathesis sends generated requests, valid and invalid, to a real daemon with one OctoPrint virtual
printer, as an operator and as a viewer: no answer may be a 5xx or differ from the OpenAPI document."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import OctoPrintFactory
from tests.farm import TOKENS, running_farm
from tests.helpers import PrinterSpec, config_for

# Every check that judges the answers against the document. Left out: positive_data_acceptance (the
# document cannot say that a file must be G-code with a plain ASCII name, nor which materials the
# configured printers have, so schema-valid submissions are refused by design) and the checks that
# need resources to create and delete (use_after_free, ensure_resource_availability).
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "ignored_auth",
]
EXAMPLES = 20  # per operation and phase: ~450 requests, ~10 s per token on 2 cores
EVENT_STREAM = "/api/v1/events"


async def _schemathesis(base_url: str, token: str, cwd: Path) -> tuple[int, str]:
    # The CLI in a subprocess: its runner is synchronous and would block this event loop, which also
    # runs the daemon under test. Fixed seed and no example database: CI runs are reproducible.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from schemathesis.cli import schemathesis; schemathesis()",
        "run",
        f"{base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(EXAMPLES),
        # The event stream is documented but never ends: a generated request would wait for the
        # request timeout every time. tests/test_sse.py tests it against a real daemon instead.
        "--exclude-path",
        EVENT_STREAM,
        "--seed",
        "20261201",
        "--generation-database",
        "none",
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--no-color",
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(180):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, out.decode(errors="replace")


@pytest.mark.peers
async def test_generated_requests_get_documented_answers_and_no_5xx(
    octoprint: OctoPrintFactory, tmp_path: Path
) -> None:
    (peer,) = octoprint(1)
    config = config_for(tmp_path, [PrinterSpec("p1", peer.url, peer.api_key)], tokens=TOKENS)
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        # Left out of the run, not out of the document.
        assert EVENT_STREAM in (await farm.api.get("/openapi.json")).json()["paths"]
        for name in ("ops", "viewer"):
            code, report = await _schemathesis(str(farm.api.base_url), farm.tokens[name], tmp_path)
            assert code == 0, f"as {name}:\n{report[-12000:]}"
            summary = re.search(r"(\d+) generated, (\d+) passed", report)
            assert summary is not None, report[-2000:]
            assert int(summary[1]) == int(summary[2]) >= 200, summary[0]  # it did test, and all passed
