"""The ``smsbot`` command."""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from pathlib import Path
from typing import Any

import click

from smsbot import news
from smsbot.cli_settings import cli_settings
from smsbot.config import ConfigError, default_rules_dir
from smsbot.db import Database, upgrade
from smsbot.keywords import Keywords, load_keywords
from smsbot.messaging.segments import count_segments
from smsbot.replies import render_reply
from smsbot.rulefiles import RuleFileError, check_rules_dir
from smsbot.triage import Decision, RuleSet, assess, load_rules
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
    """smsbot: safe SMS guidance for parents of young babies with arm or leg tremors."""


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


@main.group(invoke_without_command=True)
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
@click.pass_context
def triage(ctx: click.Context, jsonl: bool, emergency_number: str, rules_dir: Path | None) -> None:
    """Triage parent messages from stdin, one per line, and print the level and the reply.

    With --jsonl every non-blank input line gets exactly one output line, in order:
    {"level", "flags", "lang", "reply", "segments"}, or {"error"} for a bad line.
    The subcommands train the learned second opinion and score triage on the corpus.
    """
    if ctx.invoked_subcommand is not None:
        ctx.obj = rules_dir  # the rules `eval` scores
        return
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


@main.group()
def rules() -> None:
    """Rule files in rules/: validate them and run their examples."""


@rules.command("check")
@rules_dir_option
def rules_check(rules_dir: Path | None) -> None:
    """Validate every rule file and run every rule's examples; exit 1 on any problem."""
    directory = rules_dir or default_rules_dir()
    problems, files = check_rules_dir(directory)
    for problem in problems:
        click.echo(problem)
    if problems:
        sys.exit(1)
    ruleset, _ = parse_dir(directory)
    items = [*ruleset.rules, *ruleset.topics] if ruleset else []
    examples = sum(len(item.fires) + len(item.does_not_fire) for item in items)
    cues = ruleset.triggers if ruleset else ()
    examples += sum(len(cue.examples) for cue in cues)
    click.echo(
        f"OK: {files} rule files, {len(items)} rules and topics, {len(cues)} context cues, "
        f"{examples} examples pass"
    )
    if ruleset:
        unsigned = [f.name for f in ruleset.files if f.reviewed_by is None]
        click.echo(f"rule set {ruleset.version}; not yet signed off by a clinician: {len(unsigned)} files")


@main.group()
def db() -> None:
    """Database commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    settings = cli_settings()
    upgrade(settings.database_url)
    click.echo("database is up to date")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5000, show_default=True, type=int, help="Port to listen on.")
@click.option("--no-scheduler", is_flag=True, help="Do not run check-ins in this process.")
@click.option(
    "--prod",
    is_flag=True,
    help="Run under gunicorn (smsbot/gunicorn_conf.py): web workers only, run `smsbot worker` beside it.",
)
def serve(host: str, port: int, no_scheduler: bool, prod: bool) -> None:
    """Run the web app and the check-in scheduler (SQLite + console transport by default)."""
    if prod:
        os.execvp(
            "gunicorn",
            ["gunicorn", "-c", "python:smsbot.gunicorn_conf", "-b", f"{host}:{port}", "smsbot:create_app()"],
        )
    from smsbot import create_app
    from smsbot.logs import configure_logging
    from smsbot.scheduler import build_scheduler

    settings = cli_settings()
    configure_logging()
    upgrade(settings.database_url)
    try:
        app = create_app()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    scheduler = None
    if settings.run_scheduler and not no_scheduler:
        scheduler = build_scheduler(
            app.extensions["smsbot.db"], app.extensions["smsbot.transport"], settings, background=True
        )
        scheduler.start()
    click.echo(f"smsbot listening on http://{host}:{port} (transport: {settings.transport})", err=True)
    try:
        app.run(host=host, port=port, threaded=True, use_reloader=False)
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=False)


@main.command()
@click.option("--phone", default="+15550100001", show_default=True, help="The parent's phone number.")
@click.option("--whatsapp", is_flag=True, help="Text as a WhatsApp user.")
def chat(phone: str, whatsapp: bool) -> None:
    """Text the bot from the terminal, through exactly the pipeline a parent's SMS takes."""
    from smsbot.conversation import Inbound, receive
    from smsbot.phones import InvalidPhoneError, normalise_phone

    settings = cli_settings()
    try:
        phone = normalise_phone(phone, settings.default_region)
    except InvalidPhoneError as error:
        raise click.BadParameter(str(error), param_hint="--phone") from None
    upgrade(settings.database_url)
    interactive = sys.stdin.isatty()
    if interactive:
        click.echo(f"Texting as {phone}. Type a message, or Ctrl-D to quit.", err=True)
    with Database(settings.database_url) as database:
        while True:
            if interactive:
                click.echo("you> ", nl=False, err=True)
            line = sys.stdin.readline()
            if not line:
                break
            inbound = Inbound(
                sid=f"CHAT{uuid.uuid4().hex}",
                phone=phone,
                channel="whatsapp" if whatsapp else "sms",
                body=line.rstrip("\n"),
            )
            outcome = receive(database, settings, inbound)
            click.echo(f"bot [{outcome.level or '-'}]> {outcome.reply or '(no reply)'}")


@main.group()
def family() -> None:
    """A family's data: export it or erase it (privacy requests)."""


def _database_and_phone(phone: str) -> tuple[Database, str]:
    """The configured database and ``phone`` in E.164 (a bad number is a usage error)."""
    from smsbot.phones import InvalidPhoneError, normalise_phone

    settings = cli_settings()
    try:
        phone = normalise_phone(phone, settings.default_region)
    except InvalidPhoneError as error:
        raise click.BadParameter(str(error), param_hint="PHONE") from None
    return Database(settings.database_url), phone


@family.command("export")
@click.argument("phone")
def family_export(phone: str) -> None:
    """Print everything held about PHONE as JSON."""
    import json

    from smsbot.privacy import export_family, find_family

    database, phone = _database_and_phone(phone)
    with database, database.session() as session:
        found = [export_family(session, contact) for contact in find_family(session, phone)]
    if not found:
        raise click.ClickException("no family with that phone number")
    click.echo(json.dumps(found, indent=2, ensure_ascii=False))


@family.command("erase")
@click.argument("phone")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def family_erase(phone: str, yes: bool) -> None:
    """Delete PHONE's family, messages, check-ins and alerts for good."""
    from smsbot.models import utcnow
    from smsbot.privacy import erase_family, find_family

    database, phone = _database_and_phone(phone)
    if not yes:
        click.confirm("Erase this family's data for good?", abort=True)
    with database, database.session() as session:
        contacts = find_family(session, phone)
        if not contacts:
            raise click.ClickException("no family with that phone number")
        for contact in contacts:
            counts = erase_family(session, contact, now=utcnow())
            click.echo("erased: " + ", ".join(f"{n} {table}" for table, n in counts.items()))


def _attach_subcommands() -> None:
    """Commands that live beside their concern, attached to the one ``smsbot`` group."""
    from smsbot import cli_clinics, cli_triage
    from smsbot.cli_checkins import checkins, worker

    main.add_command(worker)
    main.add_command(checkins)
    cli_clinics.register(main)
    cli_triage.register(triage)


_attach_subcommands()
