"""Workflow jobs over REST: submit, poll, fetch results.

A job runs ``run_workflow(request, progress_cb) -> dict`` (the historical
workflow) in a worker thread; at most ``max_running`` run at once and at most
``max_queued`` wait, further submissions get 429. Jobs belong to the gateway,
not to the HTTP request, so a client that disconnects after submitting can
poll later. Finished jobs are kept (newest ``keep_finished``) until the
gateway stops.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import msgspec
from aiohttp import web

from ticktide.gateway import metrics as m

log = logging.getLogger(__name__)

Status = Literal["queued", "running", "completed", "failed"]
MAX_SYMBOLS = 50


class WorkflowSubmission(msgspec.Struct, forbid_unknown_fields=True):
    """The body of ``POST /workflows``."""

    symbols: list[str]
    start_date: str
    end_date: str
    config: dict[str, Any] = msgspec.field(default_factory=dict)


@dataclass(frozen=True)
class WorkflowRequest:
    """What ``run_workflow`` gets: the submission plus the server's prices file, or (``prices`` empty)
    the gateway's history settings to fetch the symbols with (``history``: sources, cache_dir, config)."""

    symbols: tuple[str, ...]
    start_date: dt.date
    end_date: dt.date
    config: dict[str, Any]
    prices: str
    history: dict[str, Any] | None = None
    job_id: str = ""  # set when the job runs: its portfolio id is job:<id>


RunWorkflow = Callable[[WorkflowRequest, Callable[[float], None]], dict]


@dataclass
class Job:
    id: str
    request: WorkflowRequest
    status: Status = "queued"
    progress: float = 0.0
    submitted_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    results: dict | None = None
    stage: str | None = None  # what a running job does now, e.g. "fetching" or "replaying"
    sources: dict | None = None  # per symbol: the history source that served it and the failures before

    def status_doc(self) -> dict[str, Any]:
        doc = {"workflow_id": self.id, "status": self.status, "progress": round(self.progress, 6),
               "submitted_at": _iso(self.submitted_at), "started_at": _iso(self.started_at),
               "finished_at": _iso(self.finished_at), "error": self.error}
        if self.stage is not None:
            doc["stage"] = self.stage
        if self.sources is not None:
            doc["sources"] = self.sources
        return doc


class JobProgress:
    """The ``progress_cb`` a job's ``run_workflow`` gets: call it with the fraction done; ``stage(name,
    sources=...)`` says what the job does now (and, after a fetch, where each symbol's prices came from)."""

    def __init__(self, job: Job) -> None:
        self.job = job

    def __call__(self, fraction: float) -> None:
        self.job.progress = min(1.0, max(self.job.progress, float(fraction)))

    def stage(self, name: str, sources: dict | None = None) -> None:
        self.job.stage = name
        if sources is not None:
            self.job.sources = sources


def _iso(ts: float | None) -> str | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat()


class InvalidSubmission(ValueError):
    pass


SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9.^=/_-]{0,23}")


def validate(body: bytes, known_symbols: frozenset[str], prices: str | None,
             history: dict[str, Any] | None = None) -> WorkflowRequest:
    """Turn a request body into a WorkflowRequest, or raise InvalidSubmission saying what is wrong.

    With ``history`` (the gateway fetches prices) any well-formed symbol is accepted: symbols all in the
    prices file run on it, others are fetched."""
    try:
        sub = msgspec.json.decode(body, type=WorkflowSubmission)
    except msgspec.ValidationError as exc:
        raise InvalidSubmission(f"invalid request body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidSubmission(f"request body is not JSON: {exc}") from None
    if not sub.symbols:
        raise InvalidSubmission("symbols: give at least one symbol")
    if len(sub.symbols) > MAX_SYMBOLS:
        raise InvalidSubmission(f"symbols: at most {MAX_SYMBOLS}, got {len(sub.symbols)}")
    symbols = tuple(dict.fromkeys(s.strip().upper() for s in sub.symbols))
    unknown = [s for s in symbols if s not in known_symbols]
    if unknown and history is not None:
        bad = [s for s in symbols if not SYMBOL.fullmatch(s)]
        if bad:
            raise InvalidSubmission(f"symbols: {', '.join(repr(s[:30]) for s in bad[:10])} are not ticker symbols "
                                    "(letters, digits and . ^ = / _ -, at most 24)")
    elif unknown:
        raise InvalidSubmission(f"symbols: {', '.join(unknown[:10])} not in the prices file; "
                                f"known: {', '.join(sorted(known_symbols))}")
    dates = []
    for name in ("start_date", "end_date"):
        value = getattr(sub, name)
        try:
            dates.append(dt.date.fromisoformat(value))
        except ValueError:
            raise InvalidSubmission(f"{name}: {value[:40]!r} is not a date (YYYY-MM-DD)") from None
    if dates[0] >= dates[1]:
        raise InvalidSubmission(f"start_date ({dates[0]}) must be before end_date ({dates[1]})")
    if unknown or not prices:
        return WorkflowRequest(symbols, dates[0], dates[1], sub.config, "", history)
    return WorkflowRequest(symbols, dates[0], dates[1], sub.config, prices)


class JobManager:
    """Workflow jobs: a bounded number run at once in threads, the rest wait. With a
    ``store`` (``ticktide.gateway.jobstore.JobStore``) every job is also kept on disk
    and the finished ones survive a restart."""

    def __init__(self, run_workflow: RunWorkflow, max_running: int = 2, max_queued: int = 32,
                 keep_finished: int = 1000, check_config: Callable[[dict], None] | None = None,
                 store=None) -> None:
        self.run_workflow, self.check_config = run_workflow, check_config
        self.max_running, self.max_queued, self.keep_finished = max_running, max_queued, keep_finished
        self.store = store
        self.jobs: dict[str, Job] = {job.id: job for job in (store.load() if store is not None else ())}
        self._prune()
        self._executor = ThreadPoolExecutor(max_workers=max_running, thread_name_prefix="gateway-workflow")
        self._tasks: set[asyncio.Task] = set()
        self._update_gauges()

    def _save(self, job: Job) -> None:
        if self.store is None:
            return
        try:
            self.store.save(job)
        except OSError as exc:  # the job goes on in memory; the operator learns the disk failed
            log.error("workflow %s: could not be saved to %s: %s", job.id, self.store.dir, exc)

    def counts(self) -> dict[str, int]:
        out = {"queued": 0, "running": 0, "completed": 0, "failed": 0}
        for job in self.jobs.values():
            out[job.status] += 1
        return out

    def _update_gauges(self) -> None:
        for status, n in self.counts().items():
            m.WORKFLOW_JOBS.labels(status).set(n)

    def submit(self, request: WorkflowRequest) -> Job | None:
        """Queue a job; None when the queue is full."""
        counts = self.counts()
        if counts["queued"] + counts["running"] >= self.max_queued + self.max_running:
            return None
        job = Job(uuid.uuid4().hex, request)
        self.jobs[job.id] = job
        self._save(job)
        self._prune()
        task = asyncio.get_running_loop().create_task(self._run(job), name=f"workflow-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._update_gauges()
        return job

    async def _run(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._executor, self._execute, job)
            # round-trip now so a result that cannot be served as JSON fails the job, not the GET
            job.results = msgspec.json.decode(msgspec.json.encode(results, enc_hook=_enc_hook))
            job.status, job.progress = "completed", 1.0
        except Exception as exc:  # noqa: BLE001 - a failed workflow is a job state, not a crash
            log.warning("workflow %s failed: %s: %s", job.id, type(exc).__name__, exc)
            job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
        job.finished_at = time.time()
        if self.store is not None:
            await loop.run_in_executor(None, self._save, job)
        self._update_gauges()

    def _execute(self, job: Job) -> dict:
        job.status, job.started_at = "running", time.time()
        self._update_gauges()

        return self.run_workflow(dataclasses.replace(job.request, job_id=job.id), JobProgress(job))

    def _prune(self) -> None:
        finished = [j for j in self.jobs.values() if j.status in ("completed", "failed")]
        for job in finished[: max(0, len(finished) - self.keep_finished)]:
            del self.jobs[job.id]
            if self.store is not None:
                self.store.delete(job.id)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)


def _enc_hook(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()
    if isinstance(obj, (dt.date, dt.datetime)):
        return obj.isoformat()
    raise NotImplementedError(f"cannot encode {type(obj).__name__} as JSON")


# -- handlers ---------------------------------------------------------------------
JOBS_KEY = web.AppKey("jobs", JobManager)
PRICES_KEY = web.AppKey("prices", tuple)  # (path, frozenset of symbols)
HISTORY_KEY = web.AppKey("history", object)  # dict (sources, cache_dir, config) or None: no fetching


def error(code: int, message: str, **extra: Any) -> web.Response:
    m.HTTP_ERRORS.labels(str(code)).inc()
    return web.json_response({"error": message, **extra}, status=code)


async def post_workflow(request: web.Request) -> web.Response:
    path, symbols = request.app[PRICES_KEY]
    body = await request.read()
    try:
        wf = validate(body, symbols, path, request.app.get(HISTORY_KEY))
    except InvalidSubmission as exc:
        return error(422 if body.strip().startswith(b"{") else 400, str(exc))
    jobs = request.app[JOBS_KEY]
    if jobs.check_config is not None and wf.config:
        try:
            jobs.check_config(wf.config)
        except ValueError as exc:
            return error(422, str(exc))
    job = jobs.submit(wf)
    if job is None:
        return error(429, "too many workflow jobs queued or running; retry later")
    return web.json_response({"workflow_id": job.id, "status": job.status}, status=202,
                             headers={"Location": f"/workflows/{job.id}/status"})


def _job(request: web.Request) -> Job | web.Response:
    job = request.app[JOBS_KEY].jobs.get(request.match_info["id"])
    if job is None:
        return error(404, f"no workflow with id {request.match_info['id'][:64]!r}")
    return job


async def get_status(request: web.Request) -> web.Response:
    job = _job(request)
    return job if isinstance(job, web.Response) else web.json_response(job.status_doc())


async def get_results(request: web.Request) -> web.Response:
    job = _job(request)
    if isinstance(job, web.Response):
        return job
    if job.status == "completed":
        return web.json_response({"workflow_id": job.id, "status": job.status, "results": job.results})
    if job.status == "failed":
        return error(409, f"workflow failed: {job.error}", status=job.status)
    return error(409, f"workflow is {job.status}; results are available once status is completed",
                 status=job.status)
