"""The data check that ends every scenario: sent, completed, lost, duplicated.

A scenario is judged on what users rely on, read from the real boundaries: the signups the API
accepted (sent), the welcome emails the SMTP server received, and the rows in PostgreSQL.

Exactly-once delivery to a plain SMTP server is impossible: a worker that dies after the server
accepted a message and before `sent` is committed sends it again on redelivery. The product's
guarantee is one Message-ID per signup, so receivers drop such a copy. A signup that received two
different Message-IDs is a duplicate email (a failure); the same Message-ID again is counted as
`resent` and reported, not failed.

`restarted` counts deliveries begun again: a recipient's `RCPT TO` reaching the SMTP server more
than once, because a worker was killed or stopped mid-task, a time limit cut the task, or the
server answered it with a failure. Not a failure either, but the work done twice that
scale-in protection exists to avoid.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from testkit.processes import wait_for
from tests.e2e.schedule_ledger import ScheduleResult
from tests.e2e.stack import Answer, AppStack, Container, Service


@dataclass(frozen=True)
class ScenarioResult:
    scenario: str
    sent: int  # tasks the app accepted (signups answered 202, or Beat slots that fell due)
    completed: int  # ... whose side effect happened and whose row says so
    lost: int  # ... that never completed
    duplicated: int  # ... whose side effect happened more than once
    seconds: float
    # ... whose email arrived again with the same Message-ID: a crash between the server's
    # acceptance and the commit of `sent`. Receivers drop the copy; not a failure.
    resent: int = 0
    # Deliveries begun again after the first (see the module docstring); None: not measured.
    restarted: int | None = None

    def problems(self) -> str:
        return f"{self.scenario}: {self.lost} lost, {self.duplicated} duplicated of {self.sent} sent"


@dataclass
class Scenario:
    """One scenario's processes, signups and result; processes started here are stopped at its end."""

    name: str
    stack: AppStack
    results: list[ScenarioResult]
    emails: list[str] = field(default_factory=list)
    processes: list[Container] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    # Per Beat schedule entry (tests/e2e/schedule_ledger.py), for the summary's second table.
    schedule_results: list[ScheduleResult] = field(default_factory=list)

    def start_worker(self, include: str | None = None, **overrides: str) -> Container:
        worker = self.stack.start_worker(include, **overrides)
        self.processes.append(worker)
        return worker

    def start_beat(self) -> Container:
        beat = self.stack.start(self.stack.containers.one("beat"))
        self.processes.append(beat)
        return beat

    def run_beat_service(self) -> Service:
        """Beat as its ECS service runs it: an exited Beat is replaced."""
        service = Service(self.start_beat)
        self.services.append(service)
        return service

    def sign_up(self, count: int, prefix: str = "", accepted: tuple[int, ...] = (202,)) -> list[Answer]:
        """Sign up `count` new people; each answered signup (202, or a 503 that keeps it) counts."""
        first = len(self.emails)
        emails = [f"{prefix or self.name}-{first + index}@example.com" for index in range(count)]
        answers = self.stack.sign_up(emails, accepted=accepted)
        self.emails.extend(emails)
        return answers

    def close(self) -> None:
        for service in self.services:
            service.stop()
        for process in self.processes:
            process.close()

    def describe_processes(self) -> str:
        return "\n\n".join(process.describe() for process in self.processes)

    def record(self, result: ScenarioResult) -> ScenarioResult:
        self.results.append(result)
        return result

    def record_schedule(self, result: ScheduleResult) -> ScheduleResult:
        self.schedule_results.append(result)
        return result

    def email_result(self) -> ScenarioResult:
        deliveries = self.stack.smtp.deliveries()
        message_ids = self.stack.smtp.message_ids()
        statuses = self.stack.signup_statuses()
        delivered = {email for email in self.emails if deliveries[email] >= 1}
        duplicated = {email for email in self.emails if len(message_ids[email]) > 1}
        return ScenarioResult(
            scenario=self.name,
            sent=len(self.emails),
            completed=sum(1 for email in delivered if statuses.get(email) == "sent"),
            lost=len(self.emails) - len(delivered),
            duplicated=len(duplicated),
            seconds=time.monotonic() - self.started,
            resent=sum(1 for email in delivered - duplicated if deliveries[email] > 1),
            restarted=sum(max(len(self.stack.smtp.attempts_for(email)) - 1, 0) for email in self.emails),
        )

    def settle_emails(self, timeout: float) -> ScenarioResult:
        """Wait until every accepted signup got its email and no message is waiting or in flight.

        With nothing left in the broker no copy of a task can still arrive, so the counts are final.
        Records the result (also on timeout) and fails on any lost or duplicated email.
        """

        def settled() -> bool:
            deliveries = self.stack.smtp.deliveries()
            return all(deliveries[email] for email in self.emails) and self.stack.email_backlog() == 0

        try:
            wait_for(settled, timeout, "emails still missing or messages still in the broker", interval=0.5)
        except AssertionError as timeout_error:
            result = self.record(self.email_result())
            missing = [email for email in self.emails if not self.stack.smtp.deliveries()[email]]
            raise AssertionError(
                f"{result.problems()}; not delivered (first 10): {missing[:10]}; "
                f"broker: {self.stack.broker_backlog()}; {timeout_error}\n{self.describe_processes()}"
            ) from None
        result = self.record(self.email_result())
        strangers = set(self.stack.smtp.deliveries()) - set(self.emails)
        assert not strangers, f"emails went to addresses nobody signed up with: {sorted(strangers)[:10]}"
        assert result.lost == 0 and result.duplicated == 0, result.problems()
        assert result.completed == result.sent, (
            f"{result.sent - result.completed} delivered emails are not marked sent in the database"
        )
        return result
