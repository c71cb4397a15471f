"""The gateway's Prometheus metrics (``ticktide_gateway_*``), served on ``/metrics``."""

from __future__ import annotations


from streaming.metrics import LATENCY_BUCKETS, counter, gauge, histogram  # (also turns the `_created` series off)

CONNECTIONS = gauge("ticktide_gateway_connections", "Open, authenticated WebSocket connections")
SUBSCRIPTIONS = gauge("ticktide_gateway_subscriptions", "Subscriptions (topic, symbol or *) over all connections")
REJECTED = counter("ticktide_gateway_rejected_connections_total",
                   "WebSocket connections refused or closed before subscribing, per reason", ["reason"])
AUTH_FAILURES = counter("ticktide_gateway_auth_failures_total", "Requests with a missing or invalid token",
                        ["transport"])
TIMED_OUT = counter("ticktide_gateway_timed_out_connections_total",
                    "Connections closed for missing a deadline: the HTTP request line and headers (http_request) "
                    "or the WebSocket auth frame (ws_auth)", ["stage"])
SLOW_DISCONNECTS = counter("ticktide_gateway_slow_disconnects_total",
                           "Connections closed because their bounded queue overflowed (code 4008)")
MESSAGES_SENT = counter("ticktide_gateway_messages_sent_total", "WebSocket frames written to clients")
EVENTS_IN = counter("ticktide_gateway_events_in_total", "Events read from the bus, per topic", ["topic"])
DECODE_ERRORS = counter("ticktide_gateway_decode_errors_total", "Bus records that did not decode, per topic",
                        ["topic"])
FANOUT_SECONDS = histogram("ticktide_gateway_fanout_seconds",
                           "Time to enqueue one event for every matching connection", buckets=LATENCY_BUCKETS)
WORKFLOW_JOBS = gauge("ticktide_gateway_workflow_jobs", "Workflow jobs held, per status", ["status"])
HTTP_ERRORS = counter("ticktide_gateway_http_errors_total", "REST answers with a 4xx/5xx status", ["status"])

ALL = (CONNECTIONS, SUBSCRIPTIONS, REJECTED, AUTH_FAILURES, TIMED_OUT, SLOW_DISCONNECTS, MESSAGES_SENT, EVENTS_IN,
       DECODE_ERRORS, FANOUT_SECONDS, WORKFLOW_JOBS, HTTP_ERRORS)
