"""URLs fit to show: a user name and password written into a URL never reach a log line or an error."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# `scheme://userinfo@` anywhere in a text, as aiohttp and yarl print URLs in their error messages.
_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@'\"<>]*@")
_HIDDEN = "***"


def redact_url(url: str) -> str:
    """`url` with its user and password replaced: `http://user:pw@host/` → `http://***@host/`."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL we can take apart (a bad IPv6 literal): hide any userinfo all the same
        return redact_urls_in(url)
    if "@" not in parts.netloc:
        return url
    # The whole userinfo goes, not only a password: a token is often given as the user name.
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{_HIDDEN}@{host}"))


def redact_urls_in(text: str) -> str:
    """`text` with the userinfo of every URL in it replaced (for library error messages)."""
    return _USERINFO.sub(rf"\1{_HIDDEN}@", text)
