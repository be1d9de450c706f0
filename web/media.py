"""Serving blobs over HTTP with Range requests (RFC 9110 section 14): 206, 416, seeking in `<video>`.

Only one range per request is served (what browsers ask for); a multi-range request gets the first
range. Blobs are addressed only through database rows (never by a path from the request): the route
looks up the sha256 of a clip's derivative and this module opens it through the blob store.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, cast
from urllib.parse import quote

from fastapi.responses import Response, StreamingResponse

from evidence_store.blobs.local import LocalBlobStore, check_sha256
from evidence_store.ports import BlobStore

CHUNK = 256 * 1024
_UNIT = re.compile(r"^\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=")
_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")
# a position with more digits than this is past the end of any blob (and Python refuses to turn more than
# 4300 digits into an int): compared by length, never converted
_MAX_DIGITS = 18


class RangeNotSatisfiable(Exception):
    pass


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def _position(text: str, size: int) -> int:
    """A position from a Range header, capped just past the blob (enough to decide every case)."""
    digits = text.lstrip("0") or "0"
    return size if len(digits) > _MAX_DIGITS else min(int(digits), size)


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The byte range asked for (RFC 9110 section 14), None for the whole blob; `RangeNotSatisfiable`
    for a bad or unsatisfiable one.

    A header in a unit other than bytes is ignored (the whole blob, section 14.2); a last position past
    the end means "to the end", a suffix longer than the blob means all of it (section 14.1.2)."""
    if header is None:
        return None
    unit = _UNIT.match(header)
    if unit is None or unit.group(1).lower() != "bytes":
        return None
    match = _RANGE.match(header[unit.end() :].split(",")[0])
    if match is None:
        raise RangeNotSatisfiable(header)
    start_text, end_text = match.groups()
    if not start_text and not end_text:
        raise RangeNotSatisfiable(header)
    if not start_text:  # suffix: the last N bytes
        suffix = _position(end_text, size)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return ByteRange(size - suffix, size - 1)
    start = _position(start_text, size)
    end = _position(end_text, size) if end_text else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable(header)
    return ByteRange(start, min(end, size - 1))


def _open_at(store: BlobStore, sha256: str, start: int, length: int) -> BinaryIO:
    """Open a blob positioned at `start`: a seek on the local store, a ranged GET on S3."""
    check_sha256(sha256)
    if isinstance(store, LocalBlobStore):
        handle = store.open(sha256)
        handle.seek(start)
        return handle
    # imported here so that a station on the local store never loads boto3 (seconds of start-up)
    from evidence_store.blobs.s3 import S3BlobStore, key_for

    if isinstance(store, S3BlobStore) and length > 0:
        body = store.client.get_object(
            Bucket=store.bucket, Key=key_for(sha256), Range=f"bytes={start}-{start + length - 1}"
        )["Body"]
        return cast(BinaryIO, body)
    handle = store.open(sha256)
    remaining = start
    while remaining > 0:  # a store that cannot seek: read up to the start
        skipped = handle.read(min(CHUNK, remaining))
        if not skipped:
            break
        remaining -= len(skipped)
    return handle


def _stream(handle: BinaryIO, length: int) -> Iterator[bytes]:
    try:
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()


def content_disposition(filename: str, *, attachment: bool) -> str:
    """A header value safe for any file name (RFC 6266 / 5987: ASCII fallback plus UTF-8 form)."""
    base = os.path.basename(filename.replace("\\", "/")) or "download"
    ascii_name = re.sub(r"[^A-Za-z0-9._-]", "_", base) or "download"
    kind = "attachment" if attachment else "inline"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(base, safe='')}"


def blob_response(
    store: BlobStore,
    sha256: str,
    size: int,
    mime_type: str,
    range_header: str | None,
    *,
    download_name: str | None = None,
    cache_private: bool = True,
) -> Response:
    """A 200 or 206 streaming response for a blob, or 416 for a range outside it."""
    headers: dict[str, Any] = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-store" if cache_private else "public",
    }
    if download_name is not None:
        headers["Content-Disposition"] = content_disposition(download_name, attachment=True)
    try:
        wanted = parse_range(range_header, size)
    except RangeNotSatisfiable:
        return Response(
            status_code=416, headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"}
        )
    if wanted is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(
            _stream(_open_at(store, sha256, 0, size), size), media_type=mime_type, headers=headers
        )
    headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{size}"
    headers["Content-Length"] = str(wanted.length)
    return StreamingResponse(
        _stream(_open_at(store, sha256, wanted.start, wanted.length), wanted.length),
        status_code=206,
        media_type=mime_type,
        headers=headers,
    )
