"""``smsbot triage``: triage parent messages from stdin, as the pipeline would answer them."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click

from smsbot.cli.settings import rules_dir_option
from smsbot.config import default_rules_dir
from smsbot.conversation import news
from smsbot.conversation.keywords import Keywords, load_keywords
from smsbot.messaging.segments import count_segments
from smsbot.rulefiles import RuleFileError
from smsbot.triage import Decision, RuleSet, assess, load_rules
from smsbot.triage.replies import render_reply
from smsbot.vocabulary import DIALABLE


def _dialable(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not re.fullmatch(DIALABLE, value):
        raise click.BadParameter(f"{value!r} is not a dialable number")
    return value


def _load(rules_dir: Path | None) -> RuleSet:
    try:
        return load_rules(rules_dir)
    except RuleFileError as exc:
        raise click.ClickException(str(exc)) from None


def _load_keywords(rules_dir: Path | None) -> Keywords:
    try:
        return load_keywords((rules_dir or default_rules_dir()).resolve())
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


def _reply(decision: Decision, ruleset: RuleSet, keywords: Keywords, emergency_number: str) -> str:
    """What a parent would be sent: the triage reply, or the reply to sensitive news."""
    name = news.reply_name(decision.level, news.news_in(decision))
    if name is not None:
        return keywords.reply(name, decision.lang, emergency_number=emergency_number)
    return render_reply(decision, emergency_number=emergency_number, rules=ruleset)


def _jsonl_line(line: str, ruleset: RuleSet, keywords: Keywords, emergency_number: str) -> dict[str, Any]:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        return {"error": f"invalid JSON: {exc.msg}"}
    if not isinstance(item, dict) or not isinstance(item.get("text"), str):
        return {"error": "expected an object with a string 'text'"}
    age = item.get("baby_age_days")
    if age is not None and (isinstance(age, bool) or not isinstance(age, int) or age < 0):
        return {"error": "'baby_age_days' must be a non-negative whole number"}
    decision = assess(item["text"], age, rules=ruleset)
    reply = _reply(decision, ruleset, keywords, emergency_number)
    return {
        "level": decision.level,
        "flags": list(decision.flags),
        "lang": decision.lang,
        "reply": reply,
        "segments": count_segments(reply),
    }


@click.command()
@click.option(
    "--jsonl", is_flag=True, help='Read {"text": ..., "baby_age_days": ...} lines; write JSON lines.'
)
@click.option(
    "--emergency-number",
    envvar="SMSBOT_EMERGENCY_NUMBER",
    default="911",
    show_default=True,
    callback=_dialable,
    help="Number replies tell parents to call [env SMSBOT_EMERGENCY_NUMBER].",
)
@rules_dir_option
def triage(jsonl: bool, emergency_number: str, rules_dir: Path | None) -> None:
    """Triage parent messages from stdin, one per line, and print the level and the reply.

    With --jsonl every non-blank input line gets exactly one output line, in order:
    {"level", "flags", "lang", "reply", "segments"}, or {"error"} for a bad line.
    """
    ruleset, keywords = _load(rules_dir), _load_keywords(rules_dir)
    for raw in sys.stdin:
        line = raw.strip()
        if not line:
            continue
        if jsonl:
            out = _jsonl_line(line, ruleset, keywords, emergency_number)
            click.echo(json.dumps(out, ensure_ascii=False))
        else:
            decision = assess(line, rules=ruleset)
            reply = _reply(decision, ruleset, keywords, emergency_number)
            click.echo(f"{decision.level.upper()}: {reply}")
