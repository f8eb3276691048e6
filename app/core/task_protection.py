"""ECS task scale-in protection while a worker runs tasks, so scale-in and deployments stop idle
workers only.

A worker bootstep starts a thread in the worker's main process that looks at the tasks running
(`celery.worker.state.active_requests`, which the main process keeps for every pool) every
POLL_SECONDS and tells the ECS agent in the task (`PUT $ECS_AGENT_URI/task-protection/v1/state`):

- a task runs: protection on, for the hard time limit plus a renewal interval and a margin
  (`protection_timings`), renewed every RENEW_SECONDS while tasks keep running, so a task that
  starts just before a renewal is still covered until its hard time limit kills it;
- nothing has run for WORKER_PROTECTION_IDLE_SECONDS: protection off, and ECS may stop the task;
- busy without a single idle moment for MAX_HOLD_FACTOR x the hard time limit: protection is no
  longer renewed and lapses, so a deployment (which protection holds up too) or a scale-in waits
  a bounded time; the worker then stops like any other (warm shutdown, long tasks put back). The
  next idle moment resets this.

The thread, not the worker's event loop, talks to the agent: a slow or failing agent never delays
consuming. Errors (agent unreachable, an ECS error such as throttling or DEPLOYMENT_BLOCKED) are
logged and retried with a growing delay; the worker keeps working unprotected meanwhile, as it
would without this step. Without ECS_AGENT_URI (outside ECS) the step does nothing.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import bootsteps
from celery.worker import state as worker_state
from django.conf import settings

logger = logging.getLogger(__name__)

AGENT_URI_VARIABLE = "ECS_AGENT_URI"  # set by the ECS agent in every container of a task
STATE_PATH = "/task-protection/v1/state"
POLL_SECONDS = 1.0
RENEW_SECONDS = 60.0
# Protection set now also covers the agent's own retries and the clock of the next renewal.
EXPIRY_MARGIN_SECONDS = 30.0
MAX_HOLD_FACTOR = 2
# The agent accepts 1 to 2,880 minutes (48 hours).
MIN_EXPIRES_MINUTES, MAX_EXPIRES_MINUTES = 1, 2880
FIRST_RETRY_SECONDS, MAX_RETRY_SECONDS = 5.0, 60.0
REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class ProtectionTimings:
    expires_in_minutes: int
    renew_seconds: float
    idle_seconds: float
    max_hold_seconds: float


def protection_timings(
    hard_time_limit_seconds: float, idle_seconds: float, renew_seconds: float = RENEW_SECONDS
) -> ProtectionTimings:
    """Timings from the hard time limit: no task outlives it, so no protection needs to either."""
    minutes = math.ceil((hard_time_limit_seconds + renew_seconds + EXPIRY_MARGIN_SECONDS) / 60)
    return ProtectionTimings(
        expires_in_minutes=min(max(minutes, MIN_EXPIRES_MINUTES), MAX_EXPIRES_MINUTES),
        renew_seconds=renew_seconds,
        idle_seconds=idle_seconds,
        max_hold_seconds=MAX_HOLD_FACTOR * hard_time_limit_seconds,
    )


@dataclass
class ProtectionState:
    """What the worker asked the agent for, and when; decides the next request (pure, no I/O)."""

    timings: ProtectionTimings
    protected_until: float | None = None  # when the last protection granted lapses
    last_granted: float = -math.inf
    busy_since: float | None = None  # start of the current stretch without an idle moment
    idle_since: float | None = None
    retry_at: float = -math.inf  # after a failed request
    failures: int = 0
    held_too_long: bool = False

    def protected(self, now: float) -> bool:
        return self.protected_until is not None and now < self.protected_until

    def next_request(self, now: float, busy: bool) -> bool | None:
        """True: protect (or renew); False: unprotect; None: nothing to ask now."""
        if busy:
            self.idle_since = None
            self.busy_since = now if self.busy_since is None else self.busy_since
            if now - self.busy_since >= self.timings.max_hold_seconds:
                self._hold_expired()
                return None
            renew = not self.protected(now) or now - self.last_granted >= self.timings.renew_seconds
            return True if renew and now >= self.retry_at else None
        self.busy_since, self.held_too_long = None, False
        self.idle_since = now if self.idle_since is None else self.idle_since
        idle_long = now - self.idle_since >= self.timings.idle_seconds
        return False if self.protected(now) and idle_long and now >= self.retry_at else None

    def granted(self, now: float, enabled: bool) -> None:
        self.failures, self.retry_at = 0, -math.inf
        if enabled:
            self.protected_until = now + self.timings.expires_in_minutes * 60
            self.last_granted = now
        else:
            self.protected_until = None

    def refused(self, now: float) -> float:
        """Records a failed request; the seconds until the next try."""
        delay = min(FIRST_RETRY_SECONDS * 2**self.failures, MAX_RETRY_SECONDS)
        self.failures += 1
        self.retry_at = now + delay
        return delay

    def _hold_expired(self) -> None:
        if not self.held_too_long:
            self.held_too_long = True
            logger.warning(
                "busy without a break for %.0f s: scale-in protection is no longer renewed, so a "
                "deployment or scale-in may stop this worker once it lapses",
                self.timings.max_hold_seconds,
            )


class AgentError(Exception):
    """The agent did not set the protection (unreachable, or an ECS failure or error)."""


class AgentClient:
    """The task scale-in protection endpoint of the ECS agent in this task."""

    def __init__(self, agent_uri: str, timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        self.url = agent_uri.rstrip("/") + STATE_PATH
        self.timeout = timeout

    def set_protection(self, enabled: bool, expires_in_minutes: int) -> dict[str, Any]:
        """PUT the state; the agent's `protection` object, or AgentError with its reason."""
        body: dict[str, Any] = {"ProtectionEnabled": enabled}
        if enabled:
            body["ExpiresInMinutes"] = expires_in_minutes
        request = urllib.request.Request(  # noqa: S310 - the agent's http:// URI from ECS
            self.url,
            data=json.dumps(body).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return _protection(response.read())
        except urllib.error.HTTPError as error:
            raise AgentError(f"HTTP {error.code}: {_reason(error.read())}") from None
        except (urllib.error.URLError, OSError) as error:
            raise AgentError(f"agent unreachable: {error}") from None


def _protection(raw: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(raw)
    except ValueError:
        raise AgentError(f"not JSON: {raw[:200]!r}") from None
    if isinstance(answer, dict) and isinstance(answer.get("protection"), dict):
        return answer["protection"]
    raise AgentError(_reason(raw))


def _reason(raw: bytes) -> str:
    """The failure reason or error code and message of an agent answer (docs: failure / error)."""
    try:
        answer = json.loads(raw)
    except ValueError:
        return raw[:200].decode(errors="replace")
    if not isinstance(answer, dict):
        return str(answer)[:200]
    failure, error = answer.get("failure") or {}, answer.get("error") or {}
    if failure:
        return f"{failure.get('Reason')} {failure.get('Detail') or ''}".strip()
    if error:
        return f"{error.get('Code')}: {error.get('Message')}"
    return json.dumps(answer)[:200]


class ProtectionKeeper:
    """The thread that keeps the protection in step with the running tasks."""

    def __init__(
        self,
        agent: AgentClient,
        timings: ProtectionTimings,
        running_tasks: Callable[[], int],
        poll_seconds: float = POLL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.agent = agent
        self.state = ProtectionState(timings)
        self.running_tasks = running_tasks
        self.poll_seconds = poll_seconds
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="task-protection", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(1.0)  # never hold up the worker's shutdown for a slow agent

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.step()
            except Exception:  # the worker must outlive any surprise in here
                logger.exception("scale-in protection step failed")

    def step(self) -> None:
        running = self.running_tasks()
        now = self.clock()
        wanted = self.state.next_request(now, busy=running > 0)
        if wanted is None:
            return
        minutes = self.state.timings.expires_in_minutes
        try:
            self.agent.set_protection(wanted, minutes)
        except AgentError as error:
            delay = self.state.refused(self.clock())
            logger.warning(
                "could not turn scale-in protection %s (%s); the worker carries on, trying again in %.0f s",
                "on" if wanted else "off",
                error,
                delay,
            )
            return
        was_protected = self.state.protected(now)
        self.state.granted(self.clock(), wanted)
        if not wanted:
            logger.info("scale-in protection off: idle")
        elif not was_protected:
            logger.info("scale-in protection on for %d min: %d task(s) running", minutes, running)


class TaskProtection(bootsteps.StartStopStep):
    """The worker bootstep: starts the protection thread once the pool runs (ECS only)."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.keeper: ProtectionKeeper | None = None

    def start(self, worker: Any) -> None:
        agent_uri = os.environ.get(AGENT_URI_VARIABLE, "")
        if not agent_uri:
            logger.info("no ECS agent (%s unset): scale-in protection off", AGENT_URI_VARIABLE)
            return
        timings = protection_timings(settings.CELERY_TASK_TIME_LIMIT, settings.WORKER_PROTECTION_IDLE_SECONDS)
        self.keeper = ProtectionKeeper(
            AgentClient(agent_uri), timings, running_tasks=lambda: len(worker_state.active_requests)
        )
        self.keeper.start()

    def stop(self, worker: Any) -> None:
        if self.keeper is not None:
            self.keeper.stop()
            self.keeper = None
