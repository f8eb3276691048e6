"""gunicorn's access log with every client-controlled field bounded (the request line, headers)."""

from typing import Any

from gunicorn.glogging import Logger

from core.logging import bounded

# Longer than any real path or User-Agent; an 8 KB header or request line is cut to this.
MAX_FIELD_CHARS = 512


class BoundedAccessLogger(Logger):  # type: ignore[misc]
    """Each access log field a client writes is cut to MAX_FIELD_CHARS before the line is made."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        fields = super().atoms(resp, req, environ, request_time)
        return {
            name: bounded(value, MAX_FIELD_CHARS) if isinstance(value, str) else value
            for name, value in fields.items()
        }
