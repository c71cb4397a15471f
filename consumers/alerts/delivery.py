"""Sending alerts: Slack-compatible webhooks (aiohttp), email (smtplib in a thread), retries.

Delivery runs in a ``Dispatcher``: a background thread with its own asyncio
loop and one queue + worker per destination, so a slow or failing
destination never blocks the consumer loop or the other destinations, and
alerts to one destination keep their order.

Retry: an attempt fails on a connection error, a timeout, HTTP 429 or 5xx,
or an SMTP error; the worker waits ``retry.delay(n)`` (exponential backoff,
capped) and tries again, up to ``retry.attempts`` attempts, then gives up
and counts the alert as failed. Other HTTP 4xx are permanent (no retry).
"""

from __future__ import annotations

import asyncio
import logging
import os
import smtplib
import threading
from email.message import EmailMessage
from typing import Any, Callable

import aiohttp
import msgspec
from streaming.metrics import counter

from consumers.alerts.config import DestinationConfig, RetryConfig
from schemas.events import Alert

log = logging.getLogger(__name__)

DELIVERIES = counter("ticktide_alert_deliveries_total",
                     "Alert delivery attempts per destination and outcome (sent, retry, failed)",
                     ["destination", "outcome"])

COLORS = {"info": "#439FE0", "warning": "#FFA500", "critical": "#D00000"}


class PermanentError(Exception):
    """Not worth retrying (e.g. HTTP 400, 404)."""


def title(alert: Alert) -> str:
    where = f" {alert.symbol}" if alert.symbol else ""
    return f"[{alert.severity.upper()}] {alert.source} {alert.type}{where}"


def slack_body(alert: Alert, suppressed: int = 0) -> dict[str, Any]:
    """A Slack incoming-webhook body: ``text`` plus one attachment with the details as fields."""
    fields = [{"title": k, "value": str(v), "short": True} for k, v in sorted((alert.details or {}).items())]
    if suppressed:
        fields.append({"title": "suppressed", "value": f"{suppressed} similar alerts rate-limited", "short": True})
    return {
        "text": f"{title(alert)}: {alert.message}",
        "attachments": [{
            "fallback": f"{title(alert)}: {alert.message}",
            "color": COLORS.get(alert.severity, "#808080"),
            "title": title(alert),
            "text": alert.message,
            "fields": fields,
            "footer": f"ticktide alert {alert.alert_id}",
            "ts": alert.ts_event // 1_000_000_000,
        }],
    }


def email_message(alert: Alert, dest: DestinationConfig, suppressed: int = 0) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = f"[ticktide] {title(alert)}"
    msg["From"] = dest.sender
    msg["To"] = ", ".join(dest.to)
    msg["X-Ticktide-Alert-Id"] = alert.alert_id
    lines = [alert.message, ""]
    lines += [f"{k}: {v}" for k, v in sorted((alert.details or {}).items())]
    if suppressed:
        lines.append(f"({suppressed} similar alerts were rate-limited)")
    lines += ["", msgspec.json.encode(alert).decode()]
    msg.set_content("\n".join(lines))
    return msg


class WebhookDestination:
    def __init__(self, cfg: DestinationConfig, retry: RetryConfig) -> None:
        self.cfg, self.retry = cfg, retry
        self.name = cfg.name
        self._session: aiohttp.ClientSession | None = None

    async def send(self, alert: Alert, suppressed: int = 0) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.retry.timeout_s))
        async with self._session.post(self.cfg.url, json=slack_body(alert, suppressed),
                                      headers=self.cfg.headers) as resp:
            await resp.read()
            if resp.status == 429 or resp.status >= 500:
                raise ConnectionError(f"HTTP {resp.status}")
            if resp.status >= 300:
                raise PermanentError(f"HTTP {resp.status}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class EmailDestination:
    def __init__(self, cfg: DestinationConfig, retry: RetryConfig) -> None:
        self.cfg, self.retry = cfg, retry
        self.name = cfg.name

    def _send_sync(self, msg: EmailMessage) -> None:
        with smtplib.SMTP(self.cfg.host, self.cfg.port, timeout=self.retry.timeout_s) as smtp:
            if self.cfg.starttls:
                smtp.starttls()
            if self.cfg.username:
                smtp.login(self.cfg.username, os.environ.get(self.cfg.password_env, ""))
            smtp.send_message(msg)

    async def send(self, alert: Alert, suppressed: int = 0) -> None:
        if not self.cfg.to:
            raise PermanentError("email destination without recipients")
        await asyncio.to_thread(self._send_sync, email_message(alert, self.cfg, suppressed))

    async def close(self) -> None:
        return None


def make_destination(cfg: DestinationConfig, retry: RetryConfig):
    return WebhookDestination(cfg, retry) if cfg.kind == "webhook" else EmailDestination(cfg, retry)


async def send_with_retry(dest, alert: Alert, retry: RetryConfig, suppressed: int = 0,
                          sleep: Callable[[float], Any] = asyncio.sleep) -> bool:
    """Send one alert, retrying with backoff; True when delivered."""
    for attempt in range(1, max(1, retry.attempts) + 1):
        try:
            await dest.send(alert, suppressed)
            DELIVERIES.labels(dest.name, "sent").inc()
            return True
        except PermanentError as exc:
            log.error("alerts: %s rejected %s permanently: %s", dest.name, alert.alert_id, exc)
            break
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, smtplib.SMTPException, ConnectionError) as exc:
            if attempt >= retry.attempts:
                log.error("alerts: %s failed %s after %d attempts: %s", dest.name, alert.alert_id, attempt, exc)
                break
            delay = retry.delay(attempt)
            DELIVERIES.labels(dest.name, "retry").inc()
            log.warning("alerts: %s attempt %d for %s failed (%s); retrying in %.2fs",
                        dest.name, attempt, alert.alert_id, exc, delay)
            await sleep(delay)
    DELIVERIES.labels(dest.name, "failed").inc()
    return False


class Dispatcher:
    """Delivers alerts in a background thread; ``submit`` is thread-safe and never blocks."""

    def __init__(self, destinations: list, retry: RetryConfig) -> None:
        self.destinations = {d.name: d for d in destinations}
        self.retry = retry
        self.delivered: list[tuple[str, str]] = []  # (destination, alert_id), for tools and tests
        self.failed: list[tuple[str, str]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queues: dict[str, asyncio.Queue] = {}
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="ticktide-alerts", daemon=True)
            self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        for name in self.destinations:
            self._queues[name] = asyncio.Queue()
        workers = [loop.create_task(self._worker(name)) for name in self.destinations]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            for w in workers:
                w.cancel()
            loop.run_until_complete(asyncio.gather(*workers, return_exceptions=True))
            for d in self.destinations.values():
                loop.run_until_complete(d.close())
            loop.close()

    async def _worker(self, name: str) -> None:
        q = self._queues[name]
        dest = self.destinations[name]
        while True:
            alert, suppressed = await q.get()
            try:
                ok = await send_with_retry(dest, alert, self.retry, suppressed)
                (self.delivered if ok else self.failed).append((name, alert.alert_id))
            except Exception:  # noqa: BLE001 - a bug in one delivery must not kill the worker
                log.exception("alerts: delivery to %s crashed", name)
                self.failed.append((name, alert.alert_id))
            finally:
                q.task_done()

    def submit(self, destination: str, alert: Alert, suppressed: int = 0) -> None:
        self.start()
        q = self._queues[destination]
        self._loop.call_soon_threadsafe(q.put_nowait, (alert, suppressed))

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until every submitted alert is delivered or given up (tests, shutdown)."""
        if self._loop is None:
            return True

        async def _join() -> None:
            await asyncio.gather(*(q.join() for q in self._queues.values()))

        fut = asyncio.run_coroutine_threadsafe(_join(), self._loop)
        try:
            fut.result(timeout)
            return True
        except TimeoutError:
            fut.cancel()
            return False

    def close(self, timeout: float = 10.0) -> None:
        if self._thread is None or self._loop is None:
            return
        self.wait_idle(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._thread = None
