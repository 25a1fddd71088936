"""Golden transcripts: conversations with smsbot written in YAML, with what each reply must be.

A transcript file holds conversations; each step is one thing that happens (the parent
texts, time passes, a clinic enrolls the family, a check-in comes due) and what must follow:
the triage level, the reply's SMS segments, phrases it must and must not say, check-ins
scheduled or not. The same file runs in the test suite (the real webhook over HTTP) and in
``smsbot chat --script`` (the pipeline in-process), through a ``Driver``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, select

from smsbot import clinics, outbox
from smsbot.checkins.dispatch import dispatch_due
from smsbot.config import Settings
from smsbot.conversation.inbound import Inbound, receive
from smsbot.db import Database
from smsbot.messaging.console import MemoryTransport
from smsbot.messaging.segments import count_segments, is_gsm7
from smsbot.models import CheckIn, Clinic, Family, Message, utcnow
from smsbot.rulefiles import read_rule_file
from smsbot.vocabulary import LEVELS, MAX_SEGMENTS

Level = Literal[LEVELS]  # type: ignore[valid-type]
CLINIC_SLUG, CLINIC_NAME = "transcripts", "Riverside Pediatrics"


class Step(BaseModel):
    """One thing that happens, and what must follow it (checks left out are not made)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    send: str | None = None  # the parent texts this
    wait_minutes: float | None = Field(default=None, gt=0)  # time passes
    enroll: Literal["en", "es"] | None = None  # the clinic enrolls the family: its consent request
    checkin: bool = False  # the family's next pending check-in comes due and is sent

    level: Level | None = None  # the triage level of the parent's text
    max_segments: int = MAX_SEGMENTS  # the text smsbot sends costs at most this
    include: list[str] = []  # phrases it must say (case ignored)
    exclude: list[str] = []  # phrases it must not say (case ignored)
    no_reply: bool = False  # smsbot must send nothing
    checkins: Literal["scheduled", "none"] | None = None  # pending check-ins after the step

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        actions = [
            self.send is not None,
            self.wait_minutes is not None,
            self.enroll is not None,
            self.checkin,
        ]
        if sum(actions) != 1:
            raise ValueError("each step does one of: send, wait_minutes, enroll, checkin")
        return self


class Conversation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    steps: list[Step] = Field(min_length=1)


class TranscriptFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["transcripts"]
    conversations: list[Conversation] = Field(min_length=1)


def load_transcripts(path: Path) -> list[Conversation]:
    return TranscriptFile.model_validate(read_rule_file(path)).conversations


class Driver(Protocol):
    """How a transcript reaches smsbot: over HTTP, or in-process."""

    def text(self, phone: str, body: str) -> tuple[str | None, str | None]:
        """The reply (None: nothing sent) and the level the text was triaged at."""

    def wait(self, phone: str, minutes: float) -> None: ...

    def enroll(self, phone: str, lang: str) -> str:
        """The consent request the clinic sent."""

    def checkin(self, phone: str) -> str:
        """The text of the check-in that came due."""

    def pending_checkins(self, phone: str) -> int: ...


@dataclass
class Turn:
    """One line of a transcript as it ran."""

    who: str  # parent | bot | clinic | checkin | clock
    text: str | None
    level: str | None = None
    failures: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.who == "clock":
            return f"  ... {self.text}"
        if self.who == "parent":
            return f"parent> {self.text}"
        if self.text is None:
            head = f"{self.who} [{self.level or '-'}]> (no reply)"
        else:
            detail = ", ".join(filter(None, (self.level, f"{count_segments(self.text)} seg")))
            head = f"{self.who} [{detail}]> {self.text}"
        return "\n".join([head, *(f"  FAIL: {failure}" for failure in self.failures)])


def run(conversation: Conversation, driver: Driver, phone: str) -> list[Turn]:
    """Play ``conversation`` from ``phone``; every turn, with the checks that failed on it."""
    turns: list[Turn] = []
    for step in conversation.steps:
        if step.wait_minutes is not None:
            driver.wait(phone, step.wait_minutes)
            turns.append(Turn("clock", f"{step.wait_minutes:g} minutes later"))
            continue
        if step.send is not None:
            turns.append(Turn("parent", step.send))
            reply, level = driver.text(phone, step.send)
            turn = Turn("bot", reply, level)
        elif step.enroll is not None:
            turn = Turn("clinic", driver.enroll(phone, step.enroll))
        else:
            turn = Turn("checkin", driver.checkin(phone))
        turn.failures = _check(step, turn, driver, phone)
        turns.append(turn)
    return turns


def _check(step: Step, turn: Turn, driver: Driver, phone: str) -> list[str]:
    failures = []
    if step.level is not None and turn.level != step.level:
        failures.append(f"level {turn.level}, expected {step.level}")
    if step.no_reply:
        if turn.text is not None:
            failures.append("a reply, expected none")
    elif turn.text is None:
        failures.append("no reply")
    else:
        if (segments := count_segments(turn.text)) > step.max_segments:
            failures.append(f"{segments} SMS segments, expected at most {step.max_segments}")
        if not is_gsm7(turn.text):
            failures.append("not GSM-7")
        lowered = turn.text.lower()
        failures += [f"does not say {phrase!r}" for phrase in step.include if phrase.lower() not in lowered]
        failures += [f"says {phrase!r}" for phrase in step.exclude if phrase.lower() in lowered]
    if step.checkins is not None:
        pending = driver.pending_checkins(phone)
        if (pending > 0) != (step.checkins == "scheduled"):
            failures.append(f"{pending} check-ins pending, expected {step.checkins}")
    return failures


def failures(turns: list[Turn]) -> list[str]:
    return [failure for turn in turns for failure in turn.failures]


def phones(first: str = "+15550110000") -> Iterator[str]:
    """A fresh number per conversation: each starts with no history."""
    number = int(first)
    while True:
        yield f"+{number}"
        number += 1


class LocalDriver:
    """The pipeline in-process, on its own clock (``wait`` moves it on): ``smsbot chat --script``.

    A check-in step makes the next one due now and sends it, without quiet hours, so a
    transcript can answer it (as the test suite does over HTTP).
    """

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = replace(settings, quiet_hours_start="00:00", quiet_hours_end="00:00")
        self.transport = MemoryTransport()
        self.offset = timedelta()
        self.sids = iter(range(1, 10**9))

    def now(self) -> datetime:
        return utcnow() + self.offset

    def text(self, phone: str, body: str) -> tuple[str | None, str | None]:
        inbound = Inbound(
            sid=f"TRANSCRIPT{utcnow().timestamp():.0f}{next(self.sids)}", phone=phone, body=body
        )
        outcome = receive(self.db, self.settings, inbound, now=self.now())
        outbox.drain_all(self.db, self.settings, now=self.now())  # as a web process would, at once
        return outcome.reply, outcome.level

    def wait(self, phone: str, minutes: float) -> None:
        self.offset += timedelta(minutes=minutes)

    def enroll(self, phone: str, lang: str) -> str:
        with self.db.session() as session:
            clinic = session.scalar(
                select(Clinic).where(Clinic.slug == CLINIC_SLUG)
            ) or clinics.create_clinic(
                session, self.settings, slug=CLINIC_SLUG, name=CLINIC_NAME, timezone="America/New_York"
            )
            enrollment, _ = clinics.enroll_family(
                session,
                clinic,
                phone=phone,
                programme="clinic_followup",
                language=lang,
                now=self.now(),
                settings=self.settings,
                transport=self.transport,
            )
            session.commit()
            return session.scalars(
                select(Message.body)
                .where(Message.family_id == enrollment.family_id, Message.kind == "consent")
                .order_by(Message.id.desc())
            ).first()

    def checkin(self, phone: str) -> str:
        with self.db.session() as session:
            checkin = session.scalars(
                select(CheckIn)
                .join(Family, Family.id == CheckIn.family_id)
                .where(Family.phone == phone, CheckIn.status == "pending")
                .order_by(CheckIn.due_at, CheckIn.id)
            ).first()
            if checkin is None:
                return "(no check-in pending)"
            checkin.due_at = self.now() - timedelta(seconds=1)
            checkin_id = checkin.id
            session.commit()
        dispatch_due(self.db, self.transport, self.settings, self.now())
        with self.db.session() as session:
            body = session.scalar(select(Message.body).where(Message.checkin_id == checkin_id))
        return body or "(the check-in was not sent)"

    def pending_checkins(self, phone: str) -> int:
        with self.db.session() as session:
            return session.scalar(
                select(func.count(CheckIn.id))
                .join(Family, Family.id == CheckIn.family_id)
                .where(Family.phone == phone, CheckIn.status == "pending")
            )
