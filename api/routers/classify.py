"""Classify one image: a multipart upload, or JSON with base64 bytes or an allowed URI.

The image's header is checked (size, format, pixel count) before it reaches the model;
decoding happens in the exported graph inside the dynamic batch.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from api import deps
from api.schemas import ClassifyJson, ClassifyResponse, ErrorResponse
from api.settings import ApiSettings
from models.errors import Unavailable
from models.image_checks import check_image, read_image
from models.locations import check_allowed
from models.prediction import utc_now
from models.registry import NAME_PATTERN

router = APIRouter(prefix="/v1/models", tags=["classify"])

_MULTIPART_SCHEMA = {
    "type": "object",
    "properties": {"image": {"type": "string", "format": "binary", "description": "The image file."}},
    "required": ["image"],
}
_REQUEST_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
        "application/json": {"schema": ClassifyJson.model_json_schema(ref_template="#/components/schemas/{model}")},
    },
}
_ERRORS = {
    code: {"model": ErrorResponse, "description": why}
    for code, why in {
        401: "missing or unknown API key",
        403: "the key may not use this model, or the URI is outside the allowed prefixes",
        404: "unknown model, alias or version, or no image at the URI",
        413: "upload over the size limit, or an image with too many pixels",
        415: "not a JPEG, PNG, GIF or BMP image, or an unsupported content type",
        422: "a corrupt image, or a malformed request",
    }.items()
}


async def _image_from_request(request: Request, settings: ApiSettings) -> tuple[bytes, str | None]:
    """The encoded image and, for a URI request, the URI."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=8)
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "the multipart field 'image' must be a file")
        return await upload.read(), None
    if content_type == "application/json":
        try:
            body = ClassifyJson.model_validate_json(await request.body())
        except ValidationError as e:
            # Without the input: a body that is not UTF-8 would make the 422 itself fail to encode.
            raise RequestValidationError(
                e.errors(include_url=False, include_context=False, include_input=False)
            ) from None
        if body.image_uri is not None:
            path = check_allowed(
                body.image_uri, settings.allowed_read_prefixes, "image_uri", internal=settings.internal_stores()
            )
            return await _read_caller_uri(request, path, settings), body.image_uri
        if len(body.image_base64) > settings.max_upload_bytes * 4 // 3 + 4:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "the image is over the upload size limit")
        try:
            return base64.b64decode(body.image_base64, validate=True), None
        except (binascii.Error, ValueError):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "image_base64 is not valid base64") from None
    raise HTTPException(
        status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        "send multipart/form-data with a file field 'image', or application/json with image_base64 or image_uri",
    )


class ReadTimedOut(Unavailable):
    """A caller's URI took longer than ``read_timeout_s`` to read."""

    status = 504


async def _read_caller_uri(request: Request, path: str, settings: ApiSettings) -> bytes:
    """Reads on the app's own small pool with a deadline: a slow or stuck store delays that
    request alone, never the threads other routes run on."""
    pool = request.app.state.reader_pool
    read = asyncio.get_running_loop().run_in_executor(pool, read_image, path, settings.max_upload_bytes)
    try:
        return await asyncio.wait_for(read, settings.read_timeout_s)
    except TimeoutError:
        raise ReadTimedOut(f"reading image_uri took over {settings.read_timeout_s:g} s") from None


@router.post(
    "/{name}:classify",
    response_model=ClassifyResponse,
    responses=_ERRORS,
    openapi_extra={"requestBody": _REQUEST_BODY},
)
async def classify(
    request: Request,
    name: deps.AllowedModel,
    server: deps.Server,
    settings: deps.Settings,
    top_k: Annotated[int, Query(ge=1, le=1000, description="Multiclass: how many labels to return.")] = 1,
    threshold: Annotated[
        float | None,
        Query(
            ge=0, le=1, description="Binary and multilabel: one threshold for every label instead of the tuned ones."
        ),
    ] = None,
    version: Annotated[int | None, Query(ge=1, description="A fixed version; overrides alias.")] = None,
    alias: Annotated[str | None, Query(pattern=NAME_PATTERN, description="Default: production.")] = None,
) -> ClassifyResponse:
    """Labels and scores for one image, from the model's production version unless told otherwise."""
    started = time.perf_counter()
    request_id = uuid.uuid4().hex
    image, uri = await _image_from_request(request, settings)
    check_image(image, settings.max_upload_bytes, settings.max_image_pixels)
    model = await server.get(name, alias=alias, version=version)
    async with model.use():
        probabilities = await model.predict(image)
    spec = model.card.label_spec
    if threshold is not None:
        spec = spec.model_copy(update={"thresholds": dict.fromkeys(spec.labels, threshold)})
    return ClassifyResponse(
        request_id=request_id,
        image_uri=uri or f"upload:{request_id}",
        labels=spec.decide(probabilities, top_k),
        scores={label: round(float(p), 6) for label, p in zip(spec.labels, probabilities, strict=True)},
        model_name=model.name,
        model_version=model.version,
        runtime=model.runner.runtime,
        predicted_at=utc_now(),
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
    )
