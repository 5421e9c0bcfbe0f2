"""HTTP service: POST /predict, GET /health and GET /metadata over a `Predictor`, merging concurrent requests.

Takes a loaded `Predictor` and the request limits; hands on a FastAPI app for uvicorn (or any ASGI server) to run.
"""
import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator, Optional

from .data.files import json_type
from .predictor import Predictor

if TYPE_CHECKING:
    import fastapi


@dataclass(frozen=True)
class ServiceLimits:
    """What one POST /predict may carry; a larger request is refused with a 4xx that names the limit."""

    max_texts: int = 64  # texts per request
    max_chars: int = 10_000  # characters per text
    max_body_bytes: int = 1_000_000  # request body size

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value < 1:
                raise ValueError(f"ServiceLimits.{name} must be ≥ 1, got {value}")


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


def create_app(predictor: Predictor, limits: Optional[ServiceLimits] = None, *, batch_window_ms: float = 5.0,
               max_batch: int = 64) -> "fastapi.FastAPI":
    """The HTTP service: POST /predict, GET /health, GET /metadata, with server-side micro-batching.

    Every refusal is JSON ``{"error": "..."}``: 400 for a body that is not JSON, 413 for a body over
    max_body_bytes, 422 for JSON of the wrong shape or over the per-request limits.
    """
    # fastapi is the optional "serve" extra: imported here so that batch prediction and the CLI run without it
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    limits = limits or ServiceLimits()
    batcher = MicroBatcher(predictor, window_ms=batch_window_ms, max_batch=max_batch)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(title="otherdata text classifier", lifespan=lifespan)
    app.state.batcher = batcher
    app.state.limits = limits

    @app.exception_handler(RequestError)
    async def refused(request: Request, error: RequestError) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(Exception)
    async def failed(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"error": f"prediction failed: {type(error).__name__}: {error}"}, status_code=500)

    @app.post("/predict")
    async def predict(request: Request):
        texts = _parse_texts(await _read_body(request, limits.max_body_bytes), limits)
        predictions = await batcher.submit(texts)
        return {"predictions": [{"label": p["label"], "score": p["score"]} for p in predictions]}

    @app.get("/health")
    async def health():
        if not batcher.running:
            return JSONResponse({"status": "unavailable", "error": "the prediction worker is not running"},
                                status_code=503)
        return {"status": "ok"}

    @app.get("/metadata")
    async def metadata():
        return {**predictor.metadata(), "limits": asdict(limits), "batching": batcher.stats()}

    return app


async def _read_body(request: Any, limit: int) -> bytes:
    """The body, refused with 413 as soon as Content-Length or the bytes actually received pass the limit."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise RequestError(400, f"header 'Content-Length' is not a byte count: {declared!r}")
        if int(declared) > limit:
            raise RequestError(413, f"body is {int(declared)} bytes; the limit is {limit} bytes (max_body_bytes): "
                                    "send fewer or shorter texts per request")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # chunked uploads carry no Content-Length, so count what actually arrives
            raise RequestError(413, f"body is over the limit of {limit} bytes (max_body_bytes): "
                                    "send fewer or shorter texts per request")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_texts(body: bytes, limits: ServiceLimits) -> list[str]:
    usage = 'send {"texts": ["first text", "second text"]}'
    if not body.strip():
        raise RequestError(400, f"body is empty; {usage}")
    try:
        payload = json.loads(body)
    except UnicodeDecodeError:
        raise RequestError(400, f"body is not UTF-8 encoded JSON; {usage}") from None
    except json.JSONDecodeError as error:
        raise RequestError(400, f"body is not valid JSON ({error.msg} at line {error.lineno} column "
                                f"{error.colno}); {usage}") from None
    except RecursionError:
        raise RequestError(400, f"body is nested too deeply to be a request; {usage}") from None
    if not isinstance(payload, dict):
        raise RequestError(422, f"body must be a JSON object, got a JSON {json_type(payload)}; {usage}")
    if "texts" not in payload:
        got = ", ".join(repr(key) for key in payload) or "no fields"
        raise RequestError(422, f"field 'texts' is missing (got {got}); {usage}")
    # extra fields are refused rather than ignored, so a misspelt option is never silently dropped
    extra = [key for key in payload if key != "texts"]
    if extra:
        raise RequestError(422, f"unknown field(s) {', '.join(map(repr, extra))}; only 'texts' is accepted")
    texts = payload["texts"]
    if not isinstance(texts, list):
        raise RequestError(422, f"field 'texts' must be a list of strings, got a JSON {json_type(texts)}")
    if not texts:
        raise RequestError(422, "field 'texts' is an empty list; send at least one text")
    if len(texts) > limits.max_texts:
        raise RequestError(422, f"field 'texts' has {len(texts)} texts; the limit is {limits.max_texts} per "
                                "request (max_texts): split it into several requests")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise RequestError(422, f"field 'texts[{index}]' must be a string, got a JSON {json_type(text)}")
        if len(text) > limits.max_chars:
            raise RequestError(422, f"field 'texts[{index}]' has {len(text)} characters; the limit is "
                                    f"{limits.max_chars} (max_chars): shorten or split the text")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            # a lone surrogate (JSON "\ud800") would make the tokenizer fail for every request in the batch
            raise RequestError(422, f"field 'texts[{index}]' has an unpaired surrogate at character "
                                    f"{error.start}; send valid Unicode text") from None
    return texts
