"""The OpenAPI entry of `GET /api/v1/events`: what a client of the stream reads, frame by frame, with an
example stream made of the same printer and job the REST routes show. Apart from events.py so the
stream's code stays readable in one sitting."""

from __future__ import annotations

import json
from typing import Any

from controller.api.errors import Responses, error_responses, success
from controller.api.examples import JOB_EXAMPLE, PRINTER_EXAMPLE, QUEUED_EXAMPLE
from controller.config import Role


def _frame(kind: str, body: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(body, separators=(',', ':'))}\n\n"


def description(
    *, retry_ms: int, keepalive_s: float, max_streams: int, max_pending: int, stuck_s: float
) -> str:
    """The operation's description, with the stream's limits as the daemon has them."""
    return f"""\
Printer and job changes pushed as server-sent events (`text/event-stream`, what a browser's
EventSource reads) the moment the farm sees them: the web page's live view. A browser opens it with
`new EventSource("/api/v1/events")` (the page's session cookie counts as the token); a script with
`curl -N -H "Authorization: Bearer $TOKEN" http://<daemon>/api/v1/events`.

What arrives, in order:

1. `retry: {retry_ms}`: how many milliseconds the browser waits before it reconnects.
2. The snapshot: every printer as `event: printer`, then every job not finished yet (queued,
   dispatching, printing, paused) as `event: job`.
3. Then one frame per change, as long as the stream is open: `event: printer` when a printer changes
   (state, job, bed, materials, maintenance at once; progress, temperatures and the host's wording at
   most once a second per printer, the last value always sent), `event: job` when a job does.
   `data:` is one line of JSON: the object `GET /api/v1/printers/{{name}}` or `GET /api/v1/jobs/{{id}}`
   returns at that moment. Keep the newest object per printer name and job id; a job that finishes
   arrives with its final state (completed, failed, cancelled).
4. `: keep-alive` (an SSE comment, to be ignored) after {keepalive_s:g} s without a change, so that
   proxies and browsers keep an idle stream open.

A client that reads slowly gets only the newest state of each printer and job, never a backlog. The
stream ends when the daemon stops, when a client has more than {max_pending} printers and jobs waiting
(too far behind), or when it has taken no byte for {stuck_s:g} s: reconnect (EventSource does it by
itself) and start again from the snapshot. At most {max_streams} streams are open at once; one more
answers 503 until one closes.

Role: viewer."""


_STREAM = (
    "retry: 3000\n\n"
    + _frame("printer", PRINTER_EXAMPLE)
    + _frame("job", JOB_EXAMPLE)
    + _frame("job", QUEUED_EXAMPLE)
    + ": keep-alive\n\n"
    + _frame("printer", {**PRINTER_EXAMPLE, "progress": 43.1, "last_seen": "2026-12-02T09:31:44+00:00"})
    + _frame("job", {**JOB_EXAMPLE, "progress": 43.1})
)


def responses() -> Responses:
    """The stream as its 200, and the errors it answers before the stream starts."""
    what = "The stream: `retry`, the snapshot, then the changes (see the description)"
    return {
        **success(what, _STREAM, media="text/event-stream"),
        **error_responses(
            Role.VIEWER,
            {
                503: (
                    "Too many streams are open, or the daemon is starting or stopping",
                    "100 event streams are open already; try again later",
                )
            },
            inline=True,
        ),
    }
