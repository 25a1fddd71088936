"""``smsbot triage``: the plain and JSON-lines interfaces other tools rely on."""

from __future__ import annotations

import json

from click.testing import CliRunner

from smsbot.cli import main


def run(args: list[str], stdin: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, ["triage", *args], input=stdin, env=env)


def test_jsonl_writes_one_line_per_input_in_order() -> None:
    lines = [
        {"text": "babys lips look blue and hes jerking"},
        {"text": "hi"},
        {"text": "temp 100.6", "baby_age_days": 120},
        {"text": "le tiemblan las piernas cuando llora"},
    ]
    result = run(["--jsonl"], "\n".join(json.dumps(x) for x in lines) + "\n")
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.output.splitlines()]
    assert [o["level"] for o in out] == ["emergency", "info", "urgent", "routine"]
    assert [o["lang"] for o in out] == ["en", "en", "en", "es"]
    assert out[0]["flags"][0] == "colour-change"
    assert set(out[0]) == {"level", "flags", "lang", "reply", "segments"}
    assert all(1 <= o["segments"] <= 3 for o in out)


def test_a_bad_line_gets_an_error_and_the_rest_still_run() -> None:
    stdin = 'not json\n{"text": 3}\n{"text": "x", "baby_age_days": "two"}\n{"text": "hi"}\n'
    out = [json.loads(line) for line in run(["--jsonl"], stdin).output.splitlines()]
    assert [set(o) for o in out[:3]] == [{"error"}] * 3
    assert out[3]["level"] == "info"


def test_emergency_number_comes_from_the_option_or_the_environment() -> None:
    stdin = json.dumps({"text": "not breathing"}) + "\n"
    by_env = json.loads(run(["--jsonl"], stdin, env={"SMSBOT_EMERGENCY_NUMBER": "999"}).output)
    assert by_env["reply"].startswith("Call 999 now")
    by_option = json.loads(run(["--jsonl", "--emergency-number", "112"], stdin).output)
    assert by_option["reply"].startswith("Call 112 now")


def test_a_bad_emergency_number_is_refused() -> None:
    result = run(["--emergency-number", "call me"], "hi\n")
    assert result.exit_code == 2
    assert "not a dialable number" in result.output


def test_plain_mode_prints_level_and_reply_per_line() -> None:
    result = run([], "legs shake when she cries\n\nhi\n")
    lines = result.output.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("ROUTINE: Likely normal jitters.")
    assert lines[1].startswith("INFO: ")
