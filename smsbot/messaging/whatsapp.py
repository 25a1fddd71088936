"""WhatsApp's 24-hour window: free text only within 24 hours of the family's last message.

After that WhatsApp delivers only templates Meta approved (Twilio Content templates, each a
``ContentSid``), named per kind of text and language in ``rules/whatsapp.yaml``. Every text
we start (consent request, check-in, staff text) is planned here: free text inside the
window, the template outside it, and the clinic's SMS fallback when it chose one. A send
refused for the window or a template (Twilio 63016 and its kin) moves on to the fallback.
The family's last inbound time is ``Family.last_contact_at``, set as each text is processed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from smsbot.messaging import Transport, TransportError
from smsbot.models import Family
from smsbot.rulefiles import RULE_FILE, RuleFileError, parse, parse_one, per_language
from smsbot.vocabulary import DEFAULT_LANG

WINDOW = timedelta(hours=24)
FILENAME = "whatsapp.yaml"
TemplateKind = Literal["consent", "checkin", "staff_message"]
TemplateVariable = Literal["clinic", "baby", "text"]
ContentSids = per_language(
    "ContentSids", Annotated[str, Field(pattern=r"^HX[0-9a-fA-F]{32}$")], "An approved template per language."
)


class _TemplateSpec(BaseModel):
    model_config = RULE_FILE
    content_sid: ContentSids  # type: ignore[valid-type]
    variables: list[TemplateVariable] = []  # what fills {{1}}, {{2}}… in order


class WhatsAppFile(BaseModel):
    model_config = RULE_FILE
    kind: Literal["whatsapp"]
    templates: dict[TemplateKind, _TemplateSpec] = {}


@dataclass(frozen=True)
class Template:
    """An approved template: its ContentSid per language, and what fills {{1}}, {{2}}…"""

    content_sid: dict[str, str]
    variables: tuple[str, ...]

    def fields(self, lang: str, values: dict[str, str]) -> dict[str, Any]:
        """The ``content_sid`` and ``content_variables`` options of a send."""
        return {
            "content_sid": self.content_sid.get(lang, self.content_sid[DEFAULT_LANG]),
            "content_variables": {str(n): values[name] for n, name in enumerate(self.variables, start=1)},
        }


def check_file(path: Path, data: dict[str, Any]) -> list[RuleFileError]:
    """Every problem of a ``kind: whatsapp`` file, each naming the file, line and field."""
    return parse(path, data, WhatsAppFile)[1]


@lru_cache(maxsize=8)
def load_templates(rules_dir: Path) -> dict[str, Template]:
    """The templates of ``<rules_dir>/whatsapp.yaml`` by kind (none when there is no file)."""
    path = Path(rules_dir) / FILENAME
    if not path.exists():
        return {}
    parsed = parse_one(path, WhatsAppFile)
    return {
        kind: Template(spec.content_sid.model_dump(), tuple(spec.variables))  # type: ignore[attr-defined]
        for kind, spec in parsed.templates.items()
    }


@dataclass(frozen=True)
class Route:
    """One way to try a send: where to, with which extra options, and what it is called."""

    to: str
    how: str  # sms | whatsapp | template | sms_fallback
    opts: dict[str, Any] = field(default_factory=dict)


def in_window(family: Family, now: datetime) -> bool:
    """Whether free text reaches this family now (always, by SMS)."""
    if family.channel != "whatsapp":
        return True
    return family.last_contact_at is not None and now - family.last_contact_at < WINDOW


def plan(
    family: Family,
    now: datetime,
    *,
    template: Template | None,
    lang: str,
    values: dict[str, str],
    sms_fallback: bool,
) -> list[Route]:
    """The ways to send one text to ``family``, in the order to try them (empty: none now)."""
    if family.channel != "whatsapp":
        return [Route(family.address, "sms")]
    routes = []
    if in_window(family, now):
        routes.append(Route(family.address, "whatsapp"))
    elif template is not None:
        routes.append(Route(family.address, "template", template.fields(lang, values)))
    if sms_fallback:
        routes.append(Route(family.phone, "sms_fallback"))
    return routes


def send(transport: Transport, routes: list[Route], body: str, **opts: Any) -> tuple[str, Route]:
    """Send ``body`` by the first route that takes it; returns the provider id and the route.

    The next route is tried only after a WhatsApp window or template refusal (a number that
    does not exist will not exist by SMS either). No route: a permanent ``TransportError``.
    """
    if not routes:
        raise TransportError(
            "outside WhatsApp's 24-hour window, with no approved template and no SMS fallback",
            permanent=True,
            window=True,
        )
    for number, route in enumerate(routes, start=1):
        try:
            return transport.send(route.to, body, **opts, **route.opts), route
        except TransportError as error:
            if not (error.window and number < len(routes)):
                raise
    raise AssertionError("unreachable: the last route raises")  # pragma: no cover
