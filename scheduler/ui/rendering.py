"""How UI pages are made: the Jinja2 environment over the package's templates,
the static files (served with a content hash in their URL), the page response
with its Content-Security-Policy, and the same-origin check on form posts."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from harrier.common.state import State, iso
from harrier.scheduler.api.errors import ApiError

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"

# Everything the page loads comes from this server: no CDN, no inline script,
# no framing by another site.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "same-origin", "Cache-Control": "no-store"}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


STATIC_FILES: dict[str, str] = {p.name: _digest(p) for p in sorted(STATIC_DIR.iterdir())
                                if p.is_file()}


def static_url(name: str) -> str:
    return f"/ui/static/{name}?v={STATIC_FILES[name]}"


def duration(seconds: float | None) -> str:
    """Human durations: 85 ms, 4.2 s, 3 min 5 s, 2 h 10 min."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def when(moment: datetime | None) -> str:
    """A UTC timestamp to the second, as the page shows it (JS localises it)."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def state_class(state: State | str) -> str:
    return f"state-{str(state).lower()}"


def query_url(path: str, params: dict[str, Any], **changes: Any) -> str:
    merged = {**params, **changes}
    pairs: list[tuple[str, str]] = []
    for key, value in merged.items():
        if value is None or value == "" or value == []:
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            pairs.append((key, str(item)))
    return path + ("?" + urlencode(pairs) if pairs else "")


environment = Environment(loader=FileSystemLoader(HERE / "templates"),
                          autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
                          trim_blocks=True, lstrip_blocks=True)
environment.globals.update(static_url=static_url, query_url=query_url, iso=iso,
                           states=[s.value for s in State])
environment.filters.update(duration=duration, when=when, state_class=state_class)


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = environment.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def check_same_origin(request: Request) -> None:
    """Route dependency for the UI's form posts. Browsers send the cached basic
    credentials with a form another site posts here; they also say where the
    form came from (Origin, Sec-Fetch-Site), and only our own pages may post.
    Clients that are not browsers send neither and cannot be tricked this way."""
    origin = request.headers.get("origin")
    site = request.headers.get("sec-fetch-site")
    if origin is not None:
        # Hosts, not schemes: behind a TLS-terminating proxy we see http.
        if urlsplit(origin).netloc != request.headers.get("host", ""):
            raise ApiError(403, f"cross-site form post refused (Origin {origin[:200]!r})")
    elif site is not None and site not in ("same-origin", "none"):
        raise ApiError(403, f"cross-site form post refused (Sec-Fetch-Site {site[:50]!r})")
