"""The OpenAPI document and its two viewers, under the same key rule as the rest of the API.

FastAPI serves them openly by default; here they need a key whenever keys are set (they
name every model route and parameter), unless ``IMGCLF_PUBLIC_DOCS`` opens them.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from api.auth import authenticate

OPENAPI_URL = "/openapi.json"


async def docs_access(request: Request) -> None:
    if not request.app.state.settings.public_docs:
        await authenticate(request)


router = APIRouter(tags=["docs"], include_in_schema=False, dependencies=[Depends(docs_access)])


@router.get(OPENAPI_URL)
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} - docs")


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} - ReDoc")
