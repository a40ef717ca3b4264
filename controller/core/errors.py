"""The farm's own errors, by kind; each kind carries the HTTP status the API answers it with.

Raise the most specific class there is (JobConflict, NotGcode, ...); the API turns any FarmError into
`{"error": "<message>"}` with the class's `status` in one handler (controller/api/errors.py), so every
message is written for the operator and never holds a secret. What a driver raises is a
devices.errors.DeviceError instead: devices/ never imports the controller.
"""

from __future__ import annotations

from typing import ClassVar


class FarmError(Exception):
    """Base of every error the controller raises on purpose; `status` is the API's answer to it."""

    status: ClassVar[int] = 500


class BadInput(FarmError):
    """The request is malformed: the form, a file name, a field after the file (400)."""

    status = 400


class TooLarge(BadInput):
    """The upload is larger than the configured limit (413)."""

    status = 413


class UnsupportedFile(BadInput):
    """The upload is not a kind of file the farm prints (415)."""

    status = 415


class Unprocessable(BadInput):
    """Well-formed, but not acceptable: a value out of range, a job no printer could take (422)."""

    status = 422


class NotFound(FarmError):
    """No job, printer or file of that id or name (404)."""

    status = 404


class Conflict(FarmError):
    """The job or printer is not in a state that allows this now (409)."""

    status = 409


class Unavailable(FarmError):
    """The farm cannot do it now, e.g. while it stops (503)."""

    status = 503
