"""The gateway's aiohttp application: WebSocket fan-out, REST workflow jobs, the live page.

One port serves everything:

- ``/ws`` — live events (``ticktide.gateway.ws``);
- ``POST /workflows``, ``GET /workflows/{id}/status``, ``GET /workflows/{id}/results``
  (bearer token) — background workflow jobs (``ticktide.gateway.rest``);
- ``/health``, ``/metrics`` (no token), ``/openapi.json``, ``/`` and ``/static/`` (the live page).

Every error answer is JSON ``{"error": "..."}`` saying what is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from ticktide.gateway import metrics as m
from ticktide.gateway.auth import TokenStore, bearer
from ticktide.gateway.hub import Hub, Limits
from ticktide.gateway.openapi import build_spec
from ticktide.gateway.rest import (
    HISTORY_KEY, JOBS_KEY, PRICES_KEY, JobManager, RunWorkflow, error, get_results, get_status, post_workflow,
)
from ticktide.gateway.ws import HUB_KEY, TOKENS_KEY, handle_ws
from streaming import connectivity
from streaming.metrics import register as register_metrics
from streaming.bus.base import Bus

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
SPEC_KEY = web.AppKey("spec", dict)
BUS_KEY = web.AppKey("bus", object)
PUBLIC = ("/health", "/metrics", "/openapi.json", "/ws", "/static/")
MAX_BODY = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "www-authenticate")}
        message = exc.reason
        if exc.status == 404:
            message = f"no such resource: {request.method} {request.path[:200]}"
        elif exc.status == 405:
            message = f"method {request.method} not allowed on {request.path[:200]}; allowed: {exc.headers.get('Allow', '')}"
        elif exc.status == 413:
            message = f"request body too large (limit {MAX_BODY} bytes)"
        resp = error(exc.status, message)
        resp.headers.update(headers)
        return resp
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - answer JSON, log the trace
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error(500, "internal error")


@web.middleware
async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if path == "/" or path.startswith(PUBLIC):
        return await handler(request)
    if request.app[TOKENS_KEY].check(bearer(request.headers.get("Authorization"))) is None:
        m.AUTH_FAILURES.labels("rest").inc()
        resp = error(401, "unauthorized: send Authorization: Bearer <token>")
        resp.headers["WWW-Authenticate"] = 'Bearer realm="ticktide"'
        return resp
    return await handler(request)


async def health(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    has_bus = request.app[BUS_KEY] is not None
    ready = hub.ready.is_set() or not has_bus
    reasons = connectivity.degraded_reasons() if has_bus else []
    status = "starting" if not ready else "degraded" if reasons else "ok"
    body = {"status": status, "bus_ready": hub.ready.is_set() and not reasons,
            "connections": len(hub.connections), "jobs": request.app[JOBS_KEY].counts()}
    if reasons:
        body["reason"] = "; ".join(reasons)
    return web.json_response(body)


async def metrics(request: web.Request) -> web.Response:
    resp = web.Response(body=generate_latest(REGISTRY))
    resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return resp


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[SPEC_KEY])


async def index(request: web.Request) -> web.StreamResponse:
    if request.headers.get("Upgrade", "").lower() == "websocket":  # a client that missed the path
        return error(400, "the WebSocket endpoint is /ws (e.g. ws://HOST:8080/ws); see docs/gateway.md")
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def submit(request: web.Request) -> web.StreamResponse:
    path, _ = request.app[PRICES_KEY]
    if path is None and request.app[HISTORY_KEY] is None:
        return error(503, "no prices file configured: start the gateway with --prices FILE "
                          "(or TICKTIDE_GATEWAY_PRICES) or --history-sources")
    return await post_workflow(request)


def create_app(tokens: TokenStore, *, bus: Bus | None = None, prices: str | None = None,
               symbols: frozenset[str] | None = None, limits: Limits | None = None,
               run_workflow: RunWorkflow | None = None, check_config: Callable[[dict], None] | None = None,
               max_running_jobs: int = 2, max_queued_jobs: int = 32, group: str | None = None,
               jobs_dir: str | None = None, history: dict | None = None) -> web.Application:
    """The application. ``bus`` None: no bus consumer (tests dispatch events into the hub directly).

    ``run_workflow`` defaults to the historical workflow; ``symbols`` (the valid
    POST symbols) default to the prices file's columns. ``history`` (sources,
    cache_dir, config: the ``[history]`` table) lets jobs fetch any symbols.
    """
    if run_workflow is None:
        from ticktide.gateway.workflow import check_config as default_check, run_historical_workflow

        run_workflow, check_config = run_historical_workflow, check_config or default_check
    if symbols is None:
        symbols = frozenset()
        if prices is not None:
            from ticktide.gateway.workflow import known_symbols

            symbols = known_symbols(prices)
    register_metrics(*m.ALL)  # the gateway's families, on /metrics from the start
    app = web.Application(middlewares=[errors_as_json, require_token], client_max_size=MAX_BODY)
    hub = Hub(limits)
    app[HUB_KEY] = hub
    app[TOKENS_KEY] = tokens
    app[BUS_KEY] = bus
    app[PRICES_KEY] = (prices, frozenset(symbols))
    app[HISTORY_KEY] = history
    store = None
    if jobs_dir is not None:
        from ticktide.gateway.jobstore import JobStore

        store = JobStore(jobs_dir)
    app[JOBS_KEY] = JobManager(run_workflow, max_running_jobs, max_queued_jobs, check_config=check_config,
                               store=store)
    app[SPEC_KEY] = build_spec(sorted(symbols), any_symbols=history is not None)
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC, show_index=False)
    app.router.add_get("/ws", handle_ws)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_post("/workflows", submit)
    app.router.add_get("/workflows/{id}/status", get_status)
    app.router.add_get("/workflows/{id}/results", get_results)

    stop = asyncio.Event()
    consumer: list[asyncio.Task] = []

    async def start_bus(app: web.Application) -> None:
        if bus is not None:
            await bus.start()
            consumer.append(asyncio.get_running_loop().create_task(_consume(hub, bus, stop, group)))

    async def close_websockets(app: web.Application) -> None:
        stop.set()
        await hub.shutdown()

    async def cleanup(app: web.Application) -> None:
        for task in consumer:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await app[JOBS_KEY].close()
        if bus is not None:
            await bus.close()

    app.on_startup.append(start_bus)
    app.on_shutdown.append(close_websockets)
    app.on_cleanup.append(cleanup)
    return app


async def _consume(hub: Hub, bus: Bus, stop: asyncio.Event, group: str | None) -> None:
    delay = 1.0
    while not stop.is_set():
        try:
            await hub.consume(bus, stop, group)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - keep serving; retry the bus
            log.error("bus consumer failed (%s: %s); retrying in %.0fs", type(exc).__name__, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
