"""The ``smsbot`` command: thin wrappers over the triage engine and the rule checker."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click

from smsbot.messaging.segments import count_segments
from smsbot.replies import render_reply
from smsbot.rulefiles import RuleFileError, check_rules_dir
from smsbot.triage import RuleSet, assess, load_rules
from smsbot.triage.rules import parse_dir


def _dialable(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not re.fullmatch(r"[0-9+*#]{2,16}", value):
        raise click.BadParameter(f"{value!r} is not a dialable number")
    return value


rules_dir_option = click.option(
    "--rules-dir",
    envvar="SMSBOT_RULES_DIR",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Directory of rule files [env SMSBOT_RULES_DIR; default: the rules shipped with smsbot].",
)


@click.group(name="smsbot")
def main() -> None:
    """smsbot: a text-message helper for parents of young babies with shaky arms or legs."""


def _load(rules_dir: Path | None) -> RuleSet:
    try:
        return load_rules(rules_dir)
    except RuleFileError as exc:
        raise click.ClickException(str(exc)) from None


def _jsonl_line(line: str, ruleset: RuleSet, emergency_number: str) -> dict[str, Any]:
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
    reply = render_reply(decision, emergency_number=emergency_number, rules=ruleset)
    return {
        "level": decision.level,
        "flags": list(decision.flags),
        "lang": decision.lang,
        "reply": reply,
        "segments": count_segments(reply),
    }


@main.command()
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
    ruleset = _load(rules_dir)
    for raw in sys.stdin:
        line = raw.strip()
        if not line:
            continue
        if jsonl:
            out = _jsonl_line(line, ruleset, emergency_number)
            click.echo(json.dumps(out, ensure_ascii=False))
        else:
            decision = assess(line, rules=ruleset)
            reply = render_reply(decision, emergency_number=emergency_number, rules=ruleset)
            click.echo(f"{decision.level.upper()}: {reply}")


@main.group()
def rules() -> None:
    """Rule files in rules/: validate them and run their examples."""


@rules.command("check")
@rules_dir_option
def rules_check(rules_dir: Path | None) -> None:
    """Validate every rule file and run every rule's examples; exit 1 on any problem."""
    from smsbot.config import default_rules_dir

    directory = rules_dir or default_rules_dir()
    problems, files = check_rules_dir(directory)
    for problem in problems:
        click.echo(problem)
    if problems:
        sys.exit(1)
    ruleset, _ = parse_dir(directory)
    items = [*ruleset.rules, *ruleset.topics] if ruleset else []
    examples = sum(len(item.fires) + len(item.does_not_fire) for item in items)
    click.echo(f"OK: {files} rule files, {len(items)} rules and topics, {examples} examples pass")
