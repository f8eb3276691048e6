"""What an uploaded file is, read from its first bytes, and how a browser may show it.

The uploader's Content-Type is a claim: `text/html` for a page with a script, served inline from
the bucket, runs in whoever opens the link. The stored type comes from the content (a short
allow-list of signatures, else application/octet-stream), and only the types on SAFE_INLINE are
shown in the browser; everything else downloads (Content-Disposition: attachment).
"""

from django.utils.http import content_disposition_header

OCTET_STREAM = "application/octet-stream"
# Leading bytes of each type this app recognizes; anything else is stored as OCTET_STREAM.
SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"PK\x03\x04", "application/zip"),
)
PLAIN_TEXT = "text/plain; charset=utf-8"
# Types a browser renders without running anything from the file. Plain text is left out: S3 cannot
# send X-Content-Type-Options: nosniff, and without it some browsers sniff text for HTML.
SAFE_INLINE = frozenset({"application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp"})
KNOWN_TYPES = frozenset({OCTET_STREAM, PLAIN_TEXT, "image/webp", *(kind for _, kind in SIGNATURES)})
SNIFF_BYTES = 512


def detected_type(head: bytes) -> str:
    """The type of a file whose first SNIFF_BYTES (or fewer) bytes are `head`."""
    for signature, kind in SIGNATURES:
        if head.startswith(signature):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head and b"\x00" not in head and is_utf8_prefix(head):
        return PLAIN_TEXT
    return OCTET_STREAM


def is_utf8_prefix(head: bytes) -> bool:
    """UTF-8, allowing a multi-byte character cut off at the end of the sample."""
    for cut in range(4):
        try:
            head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return True
    return False


def served_type(stored_type: str) -> str:
    """What the download answers with: the stored type if this app set it, else OCTET_STREAM (rows
    stored before types were detected hold the uploader's claim)."""
    return stored_type if stored_type in KNOWN_TYPES else OCTET_STREAM


def disposition(stored_type: str, filename: str) -> str:
    inline = served_type(stored_type) in SAFE_INLINE
    header = content_disposition_header(as_attachment=not inline, filename=filename)
    assert header is not None  # only None for inline without a file name
    return header
