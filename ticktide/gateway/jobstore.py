"""Workflow jobs on disk, so a gateway restart keeps them (``ticktide gateway --jobs-dir DIR``).

One JSON file per job (``<workflow_id>.json``: status document, request and
results), written whole to a temporary file and renamed, so a crash leaves the
old version or the new one, never half of one. On start, every file is read
back: finished jobs are served as before; a job that was queued or running
when the gateway stopped is marked failed ("interrupted ... submit it again")
since its work is gone. Files that do not parse are skipped with a warning
naming them.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
from pathlib import Path

import msgspec

from ticktide.gateway.rest import Job, WorkflowRequest, _enc_hook

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted: the gateway stopped before this job finished; submit it again"


class _Stored(msgspec.Struct, kw_only=True):
    workflow_id: str
    status: str
    progress: float
    submitted_at: float
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    symbols: list[str]
    start_date: dt.date
    end_date: dt.date
    config: dict = msgspec.field(default_factory=dict)
    prices: str
    results: dict | None = None


_decode = msgspec.json.Decoder(_Stored)
_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)


class JobStore:
    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, workflow_id: str) -> Path:
        return self.dir / f"{workflow_id}.json"

    def save(self, job: Job) -> None:
        r = job.request
        doc = _Stored(workflow_id=job.id, status=job.status, progress=job.progress,
                      submitted_at=job.submitted_at, started_at=job.started_at, finished_at=job.finished_at,
                      error=job.error, symbols=list(r.symbols), start_date=r.start_date, end_date=r.end_date,
                      config=r.config, prices=r.prices, results=job.results)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".{job.id}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(_encoder.encode(doc))
            os.replace(tmp, self._path(job.id))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def delete(self, workflow_id: str) -> None:
        self._path(workflow_id).unlink(missing_ok=True)

    def load(self) -> list[Job]:
        """Every stored job, oldest first; unfinished ones come back failed (and are saved so)."""
        jobs = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                doc = _decode.decode(path.read_bytes())
            except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.warning("gateway jobs: skipping %s: %s", path, exc)
                continue
            if doc.workflow_id != path.stem:
                log.warning("gateway jobs: skipping %s: it holds job %s", path, doc.workflow_id)
                continue
            request = WorkflowRequest(tuple(doc.symbols), doc.start_date, doc.end_date, doc.config, doc.prices)
            job = Job(doc.workflow_id, request, status=doc.status, progress=doc.progress,  # type: ignore[arg-type]
                      submitted_at=doc.submitted_at, started_at=doc.started_at, finished_at=doc.finished_at,
                      error=doc.error, results=doc.results)
            if job.status not in ("completed", "failed"):
                job.status, job.error = "failed", INTERRUPTED
                job.finished_at = job.finished_at or job.submitted_at
                self.save(job)
            jobs.append(job)
        jobs.sort(key=lambda j: j.submitted_at)
        return jobs
