"""Health monitoring over health.v1: missing components, error rates, stale feeds. Pure.

Every process's runner publishes a Health event periodically (status, error
rate, queue size, throughput, cumulative events in/out). The monitor keeps,
per component (any instance counts), when it last reported (by the
monitor's clock, so reporter clock skew does not matter), its error rate and
when its ``events_out`` last grew. It raises:

- ``component_missing`` (critical): no report for ``missing_after_s``;
- ``error_rate`` (warning; critical at 3x the threshold): a report with
  ``error_rate`` above the threshold (0.10);
- ``stale_feed`` (warning): a feed component (name matching a ``feeds``
  pattern) still reporting but whose ``events_out`` has not grown for
  ``stale_after_s``.

Alerts are edge-triggered: each fires once when the condition starts and can
fire again only after the component has recovered. When it recovers (reports
again, error rate back under the threshold, the feed publishing again) a
``<type>_resolved`` alert follows, with the severity of the one it resolves
(so it reaches the same destinations), ``details.resolves`` = that alert's id
and ``details.duration_s``; ``notify_resolved = false`` turns these off.
Alert ids are ``health:<component>:<type>:<now_ns>``.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from consumers.alerts.config import HealthConfig
from schemas.events import Alert, Health


@dataclass
class ComponentState:
    last_seen: int
    events_out: int
    last_progress: int
    error_rate: float = 0.0
    missing: bool = False
    erroring: bool = False
    stale: bool = False
    firing: dict = field(default_factory=dict)  # type -> the Alert raised, until resolved


class HealthMonitor:
    def __init__(self, cfg: HealthConfig | None = None, source: str = "alerts") -> None:
        self.cfg = cfg or HealthConfig()
        self.source = source
        self.components: dict[str, ComponentState] = {}

    def is_feed(self, component: str) -> bool:
        return any(fnmatch.fnmatchcase(component, p) for p in self.cfg.feeds)

    def _alert(self, component: str, kind: str, severity: str, message: str, now_ns: int, **details) -> Alert:
        alert = Alert(alert_id=f"health:{component}:{kind}:{now_ns}", source=self.source, type=kind,
                      severity=severity, message=message, ts_event=now_ns, ts_proc=now_ns,
                      details={"component": component, **details})
        st = self.components.get(component)
        if st is not None:
            st.firing[kind] = alert
        return alert

    def _resolved(self, component: str, st: ComponentState, kind: str, message: str,
                  now_ns: int) -> list[Alert]:
        raised = st.firing.pop(kind, None)
        if raised is None or not self.cfg.notify_resolved:
            return []
        duration = round((now_ns - raised.ts_event) / 1e9, 3)
        return [Alert(alert_id=f"health:{component}:{kind}_resolved:{now_ns}", source=self.source,
                      type=f"{kind}_resolved", severity=raised.severity,
                      message=f"{message} (after {duration:.0f}s)", ts_event=now_ns, ts_proc=now_ns,
                      details={"component": component, "resolves": raised.alert_id, "duration_s": duration})]

    def observe(self, h: Health, now_ns: int) -> list[Alert]:
        out: list[Alert] = []
        st = self.components.get(h.component)
        if st is None:
            st = self.components[h.component] = ComponentState(now_ns, h.events_out, now_ns)
        st.last_seen = now_ns
        if st.missing:
            st.missing = False
            out += self._resolved(h.component, st, "component_missing", f"{h.component} is reporting again",
                                  now_ns)
        if h.events_out > st.events_out or h.events_out < st.events_out:  # grew, or the process restarted
            st.last_progress = now_ns
            if st.stale:
                st.stale = False
                out += self._resolved(h.component, st, "stale_feed", f"feed {h.component} is publishing again",
                                      now_ns)
        st.events_out = h.events_out
        st.error_rate = h.error_rate
        threshold = self.cfg.error_rate
        if h.error_rate > threshold:
            if not st.erroring:
                st.erroring = True
                out.append(self._alert(
                    h.component, "error_rate", "critical" if h.error_rate > 3 * threshold else "warning",
                    f"{h.component} error rate {h.error_rate:.1%} is above {threshold:.0%} "
                    f"({h.errors} errors / {h.events_in} events, instance {h.instance})", now_ns,
                    error_rate=h.error_rate, errors=h.errors, events_in=h.events_in, instance=h.instance))
        elif st.erroring:
            st.erroring = False
            out += self._resolved(h.component, st, "error_rate",
                                  f"{h.component} error rate {h.error_rate:.1%} is back under {threshold:.0%}",
                                  now_ns)
        out.extend(self._check_stale(h.component, st, now_ns))
        return out

    def _check_stale(self, component: str, st: ComponentState, now_ns: int) -> list[Alert]:
        if st.stale or st.missing or not self.is_feed(component):
            return []
        silent = (now_ns - st.last_progress) / 1e9
        if silent < self.cfg.stale_after_s:
            return []
        st.stale = True
        return [self._alert(component, "stale_feed", "warning",
                            f"feed {component} has published nothing for {silent:.0f}s", now_ns,
                            silent_s=round(silent, 3), events_out=st.events_out)]

    def check(self, now_ns: int) -> list[Alert]:
        """Timer check: missing components and stale feeds."""
        out: list[Alert] = []
        for name, st in sorted(self.components.items()):
            silent = (now_ns - st.last_seen) / 1e9
            if not st.missing and silent >= self.cfg.missing_after_s:
                st.missing = True
                out.append(self._alert(name, "component_missing", "critical",
                                       f"{name} has not reported health for {silent:.0f}s", now_ns,
                                       silent_s=round(silent, 3)))
                continue
            out.extend(self._check_stale(name, st, now_ns))
        return out
