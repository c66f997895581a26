"""Reading a store's answer safely: its body, its JSON, and what of it an error may quote.

The address may not be a store at all, so nothing in an answer is trusted: the body is read as a
capped stream (`read_answer`; a gzip or deflate body is inflated no further than the cap), JSON is
decoded by one function, and an error quotes only WooCommerce's own error fields (`error_fields`:
`code`, `message`, `data.params`), as plain text, bounded and with credentials masked.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from shared.errors import NotAWooCommerceStore, StoreResponseTooLarge
from shared.woocommerce.credentials import redact

# A page of 100 full orders is rarely above a few MB; a store answering more is broken or hostile.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
MAX_RESPONSE_BYTES_VARIABLE = "WOOSYNC_STORE_MAX_RESPONSE_BYTES"
_HTML_TAG = re.compile(r"<[^>]{0,500}>")
# WooCommerce names the bad parameters of a 400 in data.params; a few are enough to act on.
_MAX_PARAMS_QUOTED = 10


@dataclass(frozen=True)
class Answer:
    """One HTTP answer of the store, its body read (within the limit)."""

    status_code: int
    reason_phrase: str
    headers: httpx.Headers
    content: bytes
    request: httpx.Request


async def read_answer(
    transport: httpx.AsyncBaseTransport, request: httpx.Request, limit: int, store_url: str, shown: str
) -> Answer:
    """Send `request` and read its body as a stream, never past `limit` bytes: a Content-Length
    above it is refused before the body, and a body without one stops when it passes it. The limit
    counts decoded bytes, so a compressed answer cannot inflate past it either."""
    response = await transport.handle_async_request(request)
    try:
        declared = int_header(response.headers, "Content-Length")
        if declared is not None and declared > limit:
            raise too_large(store_url, shown, response.status_code, limit, declared)
        encoding = response.headers.get("Content-Encoding", "").strip().lower()
        inflater = Inflater(encoding) if encoding in Inflater.ENCODINGS else None
        if inflater is None and encoding not in ("", "identity"):
            raise NotAWooCommerceStore(
                f"store {store_url} answered {shown} with a Content-Encoding woosync did not ask for "
                f"({plain_text(encoding, 40)})",
                store_url=store_url,
                status=response.status_code,
            )
        chunks: list[bytes] = []
        received = 0
        async for raw in response.stream:  # type: ignore[union-attr]  # an AsyncByteStream from any transport
            # Decompressed no further than the limit allows: a small compressed answer can
            # stand for gigabytes, and must not be inflated before it is counted.
            chunk = inflater.decode(raw, limit - received + 1) if inflater is not None else raw
            received += len(chunk)
            if received > limit:
                raise too_large(store_url, shown, response.status_code, limit, None)
            chunks.append(chunk)
    finally:
        await response.aclose()
    return Answer(response.status_code, response.reason_phrase, response.headers, b"".join(chunks), request)


def too_large(store_url: str, shown: str, status: int, limit: int, declared: int | None) -> StoreResponseTooLarge:
    """The error for an answer over `limit` bytes: `declared` by its Content-Length, or found reading."""
    said_limit = f"the {size(limit)} limit ({MAX_RESPONSE_BYTES_VARIABLE})"
    if declared is not None:
        said = f"answered {size(declared)} to {shown}, more than {said_limit}"
    else:
        said = f"answered more than {said_limit} to {shown}: stopped reading"
    return StoreResponseTooLarge(f"store {store_url} {said}", store_url=store_url, status=status)


class Inflater:
    """A gzip or deflate body, decompressed chunk by chunk, never producing more than asked
    (httpx's decoders inflate a whole chunk first: ~16 MiB from 16 KiB of zeros)."""

    ENCODINGS = ("gzip", "x-gzip", "deflate")

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._raw_deflate_possible = encoding == "deflate"
        # gzip framing; for deflate the zlib framing (RFC 9110), raw deflate if the first chunk says so.
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS if encoding == "deflate" else zlib.MAX_WBITS | 16)

    def decode(self, data: bytes, at_most: int) -> bytes:
        try_raw, self._raw_deflate_possible = self._raw_deflate_possible, False
        try:
            return self._zlib.decompress(data, at_most)
        except zlib.error as exc:
            if not try_raw:
                raise httpx.DecodingError(f"the {self.encoding} body is corrupt ({exc})") from None
        self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            return self._zlib.decompress(data, at_most)
        except zlib.error as exc:
            raise httpx.DecodingError(f"the {self.encoding} body is corrupt ({exc})") from None


def decode_json(content: bytes) -> Any:
    """The JSON of a body; a ValueError (orjson.JSONDecodeError is one) if it is not JSON."""
    # Some WordPress sites send a UTF-8 byte order mark before the JSON (a plugin file saved with one).
    if content.startswith(b"\xef\xbb\xbf"):
        content = content[3:]
    return orjson.loads(content)


def int_header(headers: httpx.Headers, name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def error_fields(answer: Answer, secrets: tuple[str, ...]) -> tuple[str | None, str | None, dict[str, str], bool]:
    """WooCommerce's own `code`, `message` and `data.params` from an error body, and whether the
    body is JSON: text only, bounded, `secrets` masked. Anything else in the body is never quoted."""
    try:
        body = decode_json(answer.content)
    except ValueError:
        return None, None, {}, False
    if not isinstance(body, dict):
        return None, None, {}, True
    code = body.get("code")
    message = body.get("message")
    data = body.get("data")
    raw_params = data.get("params") if isinstance(data, dict) else None
    bad_params = {
        redact(plain_text(name, 60), *secrets): redact(plain_text(problem, 200), *secrets)
        for name, problem in list(raw_params.items() if isinstance(raw_params, dict) else ())[:_MAX_PARAMS_QUOTED]
        if isinstance(problem, str)
    }
    return (
        redact(plain_text(code, 80), *secrets) if isinstance(code, str) else None,
        redact(plain_text(message), *secrets) if isinstance(message, str) else None,
        bad_params,
        True,
    )


def plain_text(message: str, limit: int = 300) -> str:
    """A store message fit for a log line: WordPress' errors carry HTML (the "critical error"
    page); tags dropped, whitespace collapsed, length bounded."""
    text = " ".join(_HTML_TAG.sub(" ", message).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def content_type(answer: Answer) -> str:
    """The answer's media type, fit to quote (`text/html`), or "no Content-Type"."""
    media_type = answer.headers.get("Content-Type", "no Content-Type").split(";")[0].strip()
    return plain_text(media_type, 80) or "no Content-Type"


def size(count: int) -> str:
    """`419430400` -> `"400 MiB"`; bytes below one KiB as bytes."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            value = count / scale
            return f"{value:.0f} {unit}" if value >= 100 else f"{value:.3g} {unit}"
    return f"{count} bytes"
