"""HTTP service: POST /predict, GET /health and GET /metadata over a `Predictor`, merging concurrent requests.

Takes a loaded `Predictor` and the request limits; hands on a FastAPI app for uvicorn (or any ASGI server) to run.
"""
import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Annotated, Any, AsyncIterator, Callable, Optional

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

from .predictor import Predictor

if TYPE_CHECKING:
    import fastapi


@dataclass(frozen=True)
class ServiceLimits:
    """What one POST /predict may carry; a larger request is refused with a 4xx, and /openapi.json states them."""

    max_texts: int = 64  # texts per request
    max_chars: int = 10_000  # characters per text
    max_body_bytes: int = 1_000_000  # request body size

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value < 1:
                raise ValueError(f"ServiceLimits.{name} must be ≥ 1, got {value}")


_TEXTS_DESCRIPTION = "texts to classify; the answer lists one prediction per text, in the same order"


class PredictRequest(BaseModel):
    """Body of POST /predict: the texts to classify, at most max_texts of at most max_chars characters each."""

    model_config = ConfigDict(extra="forbid")  # a misspelt option is refused, never silently dropped

    texts: list[str] = Field(min_length=1, description=_TEXTS_DESCRIPTION)


class Prediction(BaseModel):
    """One text's answer."""

    label: str = Field(description="the most probable label")
    score: float = Field(description="its probability")


class PredictResponse(BaseModel):
    """Answer of POST /predict: one prediction per text sent, in the same order."""

    predictions: list[Prediction]


class ErrorResponse(BaseModel):
    """A refusal; 422 answers instead carry FastAPI's list of field errors in `detail`."""

    detail: str


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description} for status, description in (
        (400, "the body cannot be read as UTF-8 JSON"),
        (413, "the body is over max_body_bytes"),
        (415, "the body is not sent as application/json"),
        (500, "the model failed on these texts"),
        (503, "the prediction worker is not running"),
    )
}


class RequestError(Exception):
    """A request the service refuses: HTTP status and a message naming the field or limit."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(eq=False)
class _Job:
    texts: list[str]
    future: asyncio.Future


class MicroBatcher:
    """Gathers the texts of concurrent requests for a short window and answers them with one predict call.

    One worker task owns the queue; the model runs in a single background thread so the event loop keeps
    accepting requests (and answering /health) during a forward pass, and the tokenizer is never shared
    between threads.
    """

    def __init__(self, predictor: Predictor, *, window_ms: float = 5.0, max_batch: int = 64) -> None:
        if window_ms < 0 or max_batch < 1:
            raise ValueError(f"batch window must be ≥ 0 ms and max_batch ≥ 1, got {window_ms} and {max_batch}")
        self.predictor = predictor
        self.window_ms = window_ms
        self.max_batch = max_batch
        self.requests = 0
        self.texts = 0
        self.batches = 0
        self.forward_passes = 0
        self.largest_batch_requests = 0
        self._queue: Optional[asyncio.Queue[_Job]] = None
        self._worker: Optional[asyncio.Task] = None
        self._executor: Optional[ThreadPoolExecutor] = None
        self._waiting: set[asyncio.Future] = set()

    @property
    def running(self) -> bool:
        return self._worker is not None and not self._worker.done()

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="otherdata-predict")
        self._worker = asyncio.create_task(self._run(), name="otherdata-micro-batcher")

    async def stop(self) -> None:
        """Stop the worker; requests still waiting get 503 (uvicorn lets in-flight requests finish first)."""
        if self._worker is not None:
            self._worker.cancel()
            with suppress(asyncio.CancelledError):
                await self._worker
        for future in self._waiting:
            if not future.done():
                future.set_exception(RequestError(503, "the service is shutting down; retry on another instance"))
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, wait=True)

    async def submit(self, texts: list[str]) -> list[dict[str, Any]]:
        if not self.running or self._queue is None:
            raise RequestError(503, "the prediction worker is not running")
        future = asyncio.get_running_loop().create_future()
        self._waiting.add(future)
        try:
            self._queue.put_nowait(_Job(texts, future))
            return await future
        finally:
            self._waiting.discard(future)

    def stats(self) -> dict[str, Any]:
        return {
            "window_ms": self.window_ms,
            "max_batch": self.max_batch,
            "requests": self.requests,
            "texts": self.texts,
            "batches": self.batches,
            "forward_passes": self.forward_passes,
            "largest_batch_requests": self.largest_batch_requests,
        }

    async def _run(self) -> None:
        assert self._queue is not None
        carried: Optional[_Job] = None
        while True:
            backlog = carried is not None
            first = carried if carried is not None else await self._queue.get()
            carried = None
            if not backlog:
                # a job left over from the last batch means requests are already queued: no need to wait for more
                await asyncio.sleep(self.window_ms / 1000)
            jobs, count = [first], len(first.texts)
            while not self._queue.empty():
                job = self._queue.get_nowait()
                if count + len(job.texts) > self.max_batch:
                    carried = job
                    break
                jobs.append(job)
                count += len(job.texts)
            await self._answer([job for job in jobs if not job.future.done()])  # done: the client went away

    async def _answer(self, jobs: list[_Job]) -> None:
        if not jobs:
            return
        texts = [text for job in jobs for text in job.texts]
        loop = asyncio.get_running_loop()
        try:
            predictions = await loop.run_in_executor(self._executor, self.predictor.predict, texts)
        except Exception as error:
            if len(jobs) == 1:
                if not jobs[0].future.done():
                    jobs[0].future.set_exception(error)
                return
            # one request the model chokes on must not fail the others merged with it: answer each on its own
            for job in jobs:
                await self._answer([job])
            return
        self.requests += len(jobs)
        self.texts += len(texts)
        self.batches += 1
        self.forward_passes += -(-len(texts) // self.predictor.batch_size)
        self.largest_batch_requests = max(self.largest_batch_requests, len(jobs))
        start = 0
        for job in jobs:
            end = start + len(job.texts)
            if not job.future.done():
                job.future.set_result(predictions[start:end])
            start = end


def request_model(limits: ServiceLimits) -> type[PredictRequest]:
    """`PredictRequest` with this service's limits as constraints, so validation and /openapi.json both state them."""
    text = Annotated[str, StringConstraints(max_length=limits.max_chars)]
    return create_model(
        "PredictRequest", __base__=PredictRequest, __doc__=PredictRequest.__doc__,
        texts=(list[text], Field(min_length=1, max_length=limits.max_texts, description=_TEXTS_DESCRIPTION)),
    )


def create_app(predictor: Predictor, limits: Optional[ServiceLimits] = None, *, batch_window_ms: float = 5.0,
               max_batch: int = 64) -> "fastapi.FastAPI":
    """The HTTP service: POST /predict, GET /health, GET /metadata, with server-side micro-batching.

    Every refusal is FastAPI's JSON ``{"detail": ...}``: 400 for a body that cannot be read, 413 for a body over
    max_body_bytes, 415 for a body that is not sent as JSON, 422 (detail: a list naming each field) for JSON of
    the wrong shape or over the per-request limits, 503 while the prediction worker is not running.
    """
    # fastapi is the optional "serve" extra: imported here so that batch prediction and the CLI run without it
    from fastapi import FastAPI, Request, Response
    from fastapi.encoders import jsonable_encoder
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    limits = limits or ServiceLimits()
    batcher = MicroBatcher(predictor, window_ms=batch_window_ms, max_batch=max_batch)
    LimitedRequest = request_model(limits)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(title="otherdata text classifier", lifespan=lifespan)
    app.add_middleware(_JsonBodyGate, max_body_bytes=limits.max_body_bytes)
    app.state.batcher = batcher
    app.state.limits = limits

    @app.exception_handler(RequestError)
    async def refused(request: Request, error: RequestError) -> JSONResponse:
        return JSONResponse({"detail": error.message}, status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        # FastAPI's own handler echoes every bad input back (a whole over-long list of texts) and answers 500 for
        # a lone surrogate, which UTF-8 cannot encode: drop the inputs, and write JSON escapes (ensure_ascii)
        errors = [{key: value for key, value in item.items() if key != "input"} for item in error.errors()]
        return Response(json.dumps({"detail": jsonable_encoder(errors)}), status_code=422,
                        media_type="application/json")

    @app.exception_handler(Exception)
    async def failed(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"prediction failed: {type(error).__name__}: {error}"}, status_code=500)

    @app.post("/predict", responses=_ERROR_RESPONSES)
    async def predict(body: LimitedRequest) -> PredictResponse:  # type: ignore[valid-type]
        """Labels and scores for up to max_texts texts, in the order sent."""
        predictions = await batcher.submit(body.texts)
        return PredictResponse(predictions=[Prediction(label=p["label"], score=p["score"]) for p in predictions])

    @app.get("/health")
    async def health():
        if not batcher.running:
            return JSONResponse({"status": "unavailable", "detail": "the prediction worker is not running"},
                                status_code=503)
        return {"status": "ok"}

    @app.get("/metadata")
    async def metadata():
        return {**predictor.metadata(), "limits": asdict(limits), "batching": batcher.stats()}

    return app


class _JsonBodyGate:
    """ASGI middleware: a body must be JSON and at most max_body_bytes, checked before FastAPI reads it.

    FastAPI reads a whole body into memory before validating it, so the size is counted here, as the chunks
    arrive (chunked uploads carry no Content-Length), and the accepted body is handed on unchanged.
    """

    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        limit = self.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and not declared.strip().isdigit():
            await _refuse(send, 400, f"header 'Content-Length' is not a byte count: {declared!r}")
            return
        if declared is not None and int(declared) > limit:
            await _refuse(send, 413, f"body is {int(declared)} bytes; the limit is {limit} bytes (max_body_bytes): "
                                     "send fewer or shorter texts per request")
            return
        received: list[dict] = []
        size = 0
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":  # the client went away: let the app see it
                break
            size += len(message.get("body", b""))
            if size > limit:
                await _refuse(send, 413, f"body is over the limit of {limit} bytes (max_body_bytes): send fewer or "
                                         "shorter texts per request")
                return
            if not message.get("more_body", False):
                break
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if size and not (content_type == "application/json" or content_type.endswith("+json")):
            await _refuse(send, 415, f"body is sent as {content_type or 'no content type'!r}; send JSON with the "
                                     "header 'Content-Type: application/json' (curl: --json '{\"texts\": [...]}')")
            return
        replay = iter(received)

        async def receive_again() -> dict:
            return next(replay, None) or await receive()

        await self.app(scope, receive_again, send)


async def _refuse(send: Callable, status: int, message: str) -> None:
    """Answer a request the middleware refuses in FastAPI's error shape, before any route sees it."""
    body = json.dumps({"detail": message}).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
