"""A source's body gathered chunk by chunk under the decoded-size cap, gunzipped when it is gzip.

Some sources are gzip files that say nothing about it: `feed.xml.gz` served as
`application/xml` or `application/x-gzip` with no Content-Encoding, local
`.xml.gz` archives. No feed begins with the gzip magic bytes (XML and JSON are
text), so a body that does is decompressed here, as it streams in, never past
`max_bytes` of output: a small bomb stops at the cap instead of inflating into
memory. Content-Encoding itself is urllib3's job, under the same cap in fetch.py;
a body that is still gzip after it (a `.gz` file served gzip-encoded) is
decompressed once more here.
"""

from __future__ import annotations

import zlib

from ..errors import FailureKind, FetchError

GZIP_MAGIC = b"\x1f\x8b"
#: Content types that say "compressed" rather than what the body is: dropped once it is decompressed,
#: so the parser looks at the document itself.
GZIP_TYPES = ("application/gzip", "application/x-gzip", "application/x-gunzip", "application/gzipped",
              "application/gzip-compressed", "application/octet-stream")


class Body:
    """The body so far; `add` each chunk as it arrives, `bytes()` once it has ended.

    `too_large` is the message of the FetchError raised when the decoded body
    passes `max_bytes` (for a gzip body, with a note that the limit counts
    decompressed bytes).
    """

    def __init__(self, max_bytes: int, too_large: str):
        self.max_bytes = max_bytes
        self.too_large = too_large
        self.gzipped = False
        self._head = b""  # the first bytes, until there are enough to see the magic
        self._decided = False
        self._inflater = None
        self._trailer = False  # what follows the last gzip member is ignored
        self._chunks: list[bytes] = []
        self._size = 0

    def add(self, chunk: bytes) -> None:
        if not self._decided:
            self._head += chunk
            if len(self._head) < len(GZIP_MAGIC):
                return
            chunk, self._head, self._decided = self._head, b"", True
            if chunk.startswith(GZIP_MAGIC):
                self.gzipped = True
                self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        if self._inflater is None:
            self._keep(chunk)
        else:
            self._inflate(chunk)

    def bytes(self) -> bytes:
        """The whole decoded body; FetchError when a gzip body ended before its end."""
        if not self._decided:
            self._keep(self._head)
        elif self._inflater is not None and not self._inflater.eof:
            raise FetchError("the gzip-compressed body is truncated (it ended before the end of its data)",
                             kind=FailureKind.BROKEN)
        return b"".join(self._chunks)

    def _keep(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self.max_bytes:
            raise FetchError(self.too_large, kind=FailureKind.TOO_LARGE)
        if data:
            self._chunks.append(data)

    def _inflate(self, data: bytes) -> None:
        """Decompress `data`, never producing more than one byte past the cap; members may follow each other."""
        while data and not self._trailer:
            if self._inflater.eof:  # a multi-member file (`cat a.gz b.gz`): does another member start here?
                if not GZIP_MAGIC.startswith(data[:2]):
                    self._trailer = True  # bytes after the last member, which gzip(1) ignores too
                    return
                self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                out = self._inflater.decompress(data, self.max_bytes - self._size + 1)
            except zlib.error as exc:
                raise FetchError(f"the body starts like gzip but does not decompress ({exc})",
                                 kind=FailureKind.PARSE) from exc
            self._size += len(out)
            if self._size > self.max_bytes:
                raise FetchError(f"{self.too_large} (gzip-compressed: the limit counts the decompressed bytes)",
                                 kind=FailureKind.TOO_LARGE)
            self._chunks.append(out)
            data = self._inflater.unused_data if self._inflater.eof else self._inflater.unconsumed_tail


def plain_headers(headers: dict[str, str], body: Body) -> dict[str, str]:
    """The headers to parse a decompressed body with: a content type that only said "gzip" is dropped."""
    if not body.gzipped:
        return headers
    mime = headers.get("content-type", "").split(";")[0].strip().lower()
    if mime in GZIP_TYPES:
        return {k: v for k, v in headers.items() if k != "content-type"}
    return headers
