"""The gateway's OpenAPI document, served at ``/openapi.json``.

Generated at start-up because the valid ``symbols`` are the columns of the
server's prices file; everything else is fixed.
"""

from __future__ import annotations

from typing import Any

from ticktide.gateway.rest import MAX_SYMBOLS
from ticktide.workflow.profiles import json_schema as document_keys

_ERROR = {"$ref": "#/components/schemas/Error"}


def _err(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


WS_DESCRIPTION = """\
Live events over WebSocket at `/ws` (same port). Authenticate with an
`Authorization: Bearer <token>` header on the upgrade request, or send
`{"action": "auth", "token": "..."}` as the first frame. Then send
`{"action": "subscribe", "topics": ["signals", "ticks", "features", "risk", "alerts"], "symbols": ["AAPL"]}`
(no `symbols`: every symbol; also `bars`, `targets`, `rebalances`) and `{"action": "unsubscribe", ...}`.
Instead of `topics`, `"data_type"` names a group: `market_data` (ticks and bars), `features`,
`signals`, `risk`, `alerts`, `portfolio` (targets and rebalances). Events arrive as
`{"type": "event", "topic": ..., "symbol": ..., "ts_gateway": ns, "event": {...}}` where `event`
follows the topic's JSON Schema (`schemas/json/<topic>.v1.schema.json`).
Close codes: 4001 unauthorized, 4002 no auth message in time, 4008 slow consumer (its bounded
queue overflowed), 4029 too many connections for the token, 1009 frame too large, 1001 shutdown.
"""


def build_spec(symbols: list[str], server_url: str | None = None, any_symbols: bool = False) -> dict[str, Any]:
    job_id = {"name": "id", "in": "path", "required": True, "description": "the workflow_id POST returned",
              "schema": {"type": "string", "minLength": 1, "maxLength": 64}}
    status_schema = {
        "type": "object", "additionalProperties": False,
        "required": ["workflow_id", "status", "progress", "submitted_at", "started_at", "finished_at", "error"],
        "properties": {
            "workflow_id": {"type": "string"},
            "status": {"type": "string", "enum": ["queued", "running", "completed", "failed"]},
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "submitted_at": {"type": "string", "format": "date-time"},
            "started_at": {"type": "string", "format": "date-time", "nullable": True},
            "finished_at": {"type": "string", "format": "date-time", "nullable": True},
            "error": {"type": "string", "nullable": True},
            "stage": {"type": "string", "description": "what a running job does now (fetching, replaying)"},
            "sources": {"type": "object", "description": "per symbol: the history source that served it, "
                                                          "whether from the cache, the failures before it"},
        },
    }
    symbol_item = {"type": "string", "pattern": "^[A-Z0-9][A-Z0-9.^=/_-]{0,23}$"} if any_symbols else \
        {"type": "string", "enum": sorted(symbols)}
    config_tables = {name: {"type": "object", "description": f"the [{name}] table of the workflow TOML config"}
                     for name in ("workflow", "portfolio", "execution", "risk", "features", "alerts")}
    config_tables.update(document_keys())  # the API document's names (ticktide.workflow.profiles)
    spec: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "ticktide gateway", "version": "1.0.0", "description": WS_DESCRIPTION},
        "paths": {
            "/health": {"get": {
                "summary": "liveness and readiness", "security": [], "operationId": "health",
                "responses": {"200": _ok("the gateway is up", {"$ref": "#/components/schemas/Health"})}}},
            "/metrics": {"get": {
                "summary": "Prometheus metrics", "security": [], "operationId": "metrics",
                "responses": {"200": {"description": "text exposition format",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/workflows": {"post": {
                "summary": "run the historical workflow in the background", "operationId": "submitWorkflow",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/WorkflowSubmission"}}}},
                "responses": {
                    "202": _ok("queued", {"type": "object", "required": ["workflow_id", "status"],
                                          "properties": {"workflow_id": {"type": "string"},
                                                         "status": {"type": "string", "enum": ["queued"]}}}),
                    "400": _err("the body is not a JSON object"),
                    "401": _err("missing or invalid bearer token"),
                    "413": _err("the body is too large"),
                    "422": _err("the body is JSON but not a valid submission; `error` says what is wrong"),
                    "429": _err("too many jobs queued or running"),
                    "503": _err("the gateway has no prices file configured (--prices)"),
                }}},
            "/workflows/{id}/status": {"get": {
                "summary": "a job's status and progress", "operationId": "workflowStatus",
                "parameters": [job_id],
                "responses": {"200": _ok("the job", status_schema),
                              "401": _err("missing or invalid bearer token"),
                              "404": _err("no such workflow")}}},
            "/workflows/{id}/results": {"get": {
                "summary": "a completed job's results", "operationId": "workflowResults",
                "parameters": [job_id],
                "responses": {
                    "200": _ok("the results (the workflow's results.json)", {
                        "type": "object", "required": ["workflow_id", "status", "results"],
                        "properties": {"workflow_id": {"type": "string"},
                                       "status": {"type": "string", "enum": ["completed"]},
                                       "results": {"type": "object"}}}),
                    "401": _err("missing or invalid bearer token"),
                    "404": _err("no such workflow"),
                    "409": _err("not completed (queued, running or failed); `status` says which")}}},
        },
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"],
                          "properties": {"error": {"type": "string"}, "status": {"type": "string"}}},
                "Health": {"type": "object", "required": ["status", "bus_ready", "connections", "jobs"],
                           "properties": {"status": {"type": "string", "enum": ["ok", "starting", "degraded"]},
                                          "reason": {"type": "string",
                                                     "description": "why not ok, e.g. the broker is unreachable"},
                                          "bus_ready": {"type": "boolean"},
                                          "connections": {"type": "integer", "minimum": 0},
                                          "jobs": {"type": "object",
                                                   "additionalProperties": {"type": "integer"}}}},
                "WorkflowSubmission": {
                    "type": "object", "additionalProperties": False,
                    "required": ["symbols", "start_date", "end_date"],
                    "properties": {
                        "symbols": {"type": "array", "minItems": 1, "maxItems": MAX_SYMBOLS,
                                    "items": symbol_item},
                        "start_date": {"type": "string", "format": "date"},
                        "end_date": {"type": "string", "format": "date",
                                     "description": "after start_date"},
                        "config": {"type": "object", "additionalProperties": False,
                                   "properties": config_tables},
                    }},
            },
        },
    }
    if server_url:
        spec["servers"] = [{"url": server_url}]
    return spec
