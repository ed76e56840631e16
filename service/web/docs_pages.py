"""The API's own documentation pages, served by the service with no CDN.

- `/docs`: Swagger UI, to try a call (Authorize with a bearer token);
- `/redoc`: ReDoc, to read the reference;
- `/problems`: every problem `type` (service/web/problem_types.py); a problem's
  `type`, `/problems#<slug>`, is its entry there;
- `/docs-assets/`: the vendored viewers (service/web/static/README.md: versions,
  licences, checksums).

The pages carry a Content-Security-Policy that allows only the service's own
scripts and styles (Swagger UI and ReDoc set inline styles, ReDoc's search runs
in a `blob:` worker); nothing is fetched from elsewhere, so the pages work offline.
None of them takes a token or shows any data: the token typed into Swagger UI's
Authorize dialog stays in that page (not persisted).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Final

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from service.web.problem_types import PROBLEM_TYPES

STATIC: Final = Path(__file__).resolve().parent / "static"
ASSETS: Final = "/docs-assets"
DOCS_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
PAGE_HEADERS: Final = {
    "Content-Security-Policy": DOCS_CSP,
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

router = APIRouter(include_in_schema=False)

SWAGGER_PAGE: Final = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Accord API: try it</title>
<link rel="icon" type="image/png" href="{ASSETS}/swagger-ui/favicon-32x32.png">
<link rel="stylesheet" href="{ASSETS}/swagger-ui/swagger-ui.css">
</head><body><div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui/swagger-ui-bundle.js"></script>
<script src="{ASSETS}/swagger-ui/docs-init.js"></script>
</body></html>
"""

REDOC_PAGE: Final = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Accord API reference</title>
</head><body><redoc spec-url="/openapi.json" hide-download-button></redoc>
<script src="{ASSETS}/redoc/redoc.standalone.js"></script>
</body></html>
"""


def _problems_page() -> str:
    rows = "\n".join(
        f'<section id="{p.slug}"><h2><code>{html.escape(p.uri)}</code></h2>'
        f"<p><strong>{p.status}</strong> {html.escape(p.title)}</p>"
        f"<p>{html.escape(p.meaning)}</p></section>"
        for p in PROBLEM_TYPES
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Accord problem types</title></head>
<body><h1>Problem types</h1>
<p>Every error of the Accord API is an RFC 9457 problem (<code>application/problem+json</code>)
whose <code>type</code> is one of these. <code>errors</code>, when present, lists each thing
wrong: <code>path</code> and <code>message</code>, never the value sent.</p>
{rows}
</body></html>
"""


PROBLEMS_PAGE: Final = _problems_page()


def _page(text: str) -> HTMLResponse:
    return HTMLResponse(text, headers=PAGE_HEADERS)


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return _page(SWAGGER_PAGE)


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    return _page(REDOC_PAGE)


@router.get("/problems")
async def problem_types() -> HTMLResponse:
    return _page(PROBLEMS_PAGE)


class _Assets(StaticFiles):
    """The vendored viewers, with the same CSP as the pages."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(PAGE_HEADERS)
        return response


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(ASSETS, _Assets(directory=STATIC, check_dir=True), name="docs-assets")
