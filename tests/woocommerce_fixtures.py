"""The captured WooCommerce responses (tests/fixtures/woocommerce-fixtures) for the tests.

Each fixture file is one genuine answer of a WooCommerce 10 store: the request that was sent
(credentials redacted), the status, headers and parsed JSON body. The directory is
`WOOSYNC_WOOCOMMERCE_FIXTURES` if set, else `tests/fixtures/woocommerce-fixtures` beside this
module. Test support only: the shipped packages never read the captures.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx

# The captures live in the repository so that every clone tests against them.
_CANDIDATES = (Path(__file__).resolve().parent / "fixtures" / "woocommerce-fixtures",)
# Hop-by-hop and framing headers describe the captured connection, not the answer: a replay
# recomputes them for the body it sends.
_FRAMING_HEADERS = {"content-length", "transfer-encoding", "connection", "content-encoding"}


class FixturesNotFound(LookupError):
    pass


def fixtures_dir() -> Path:
    configured = os.environ.get("WOOSYNC_WOOCOMMERCE_FIXTURES")
    candidates = (Path(configured),) if configured else _CANDIDATES
    for candidate in candidates:
        if (candidate / "_index.json").is_file():
            return candidate
    raise FixturesNotFound(
        "WooCommerce fixtures not found in "
        + ", ".join(str(path) for path in candidates)
        + " (set WOOSYNC_WOOCOMMERCE_FIXTURES to the woocommerce-fixtures directory)"
    )


@dataclass(frozen=True)
class CapturedResponse:
    name: str
    method: str
    path: str
    params: dict[str, str]
    status: int
    headers: tuple[tuple[str, str], ...]
    body: Any
    note: str

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def to_response(self, *, status: int | None = None, extra_headers: dict[str, str] | None = None) -> httpx.Response:
        """The captured answer as an httpx.Response (for an httpx.MockTransport handler)."""
        headers = [(key, value) for key, value in self.headers if key.lower() not in _FRAMING_HEADERS]
        headers += list((extra_headers or {}).items())
        content = json.dumps(self.body, ensure_ascii=False).encode()
        return httpx.Response(status or self.status, headers=headers, content=content)


@lru_cache(maxsize=None)
def load_fixture(name: str) -> CapturedResponse:
    """One fixture by file name, with or without `.json`."""
    path = fixtures_dir() / (name if name.endswith(".json") else f"{name}.json")
    raw = json.loads(path.read_text(encoding="utf-8"))
    request = raw["request"]
    headers: list[tuple[str, str]] = []
    for key, value in raw["headers"].items():
        for one in value if isinstance(value, list) else [value]:
            headers.append((key, str(one)))
    return CapturedResponse(
        name=path.stem,
        method=request["method"],
        path=request["path"],
        params={key: str(value) for key, value in (request.get("params") or {}).items()},
        status=int(raw["status"]),
        headers=tuple(headers),
        body=raw["body"],
        note=(raw.get("meta") or {}).get("note", ""),
    )


def fixture_names() -> list[str]:
    """Every captured response (the index and the OAuth known-answer file are not responses)."""
    return sorted(
        path.stem
        for path in fixtures_dir().glob("*.json")
        if not path.name.startswith("_") and path.stem != "oauth_signature_example"
    )


def oauth_signature_example() -> dict[str, Any]:
    """The known-answer OAuth request (oauth_signature_example.json) as a dict."""
    return json.loads((fixtures_dir() / "oauth_signature_example.json").read_text(encoding="utf-8"))
