"""``smsbot rules check``: a clinician's typo must fail loudly, naming file, rule and reason."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from smsbot.cli import main
from smsbot.config import default_rules_dir
from smsbot.rulefiles import RuleFileError
from smsbot.triage import load_rules
from smsbot.triage.rules import parse_dir


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), target)
    return target


def check(rules_dir: Path):
    return CliRunner().invoke(main, ["rules", "check", "--rules-dir", str(rules_dir)])


def test_the_shipped_rules_pass(rules_dir: Path) -> None:
    result = check(rules_dir)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"OK: {len(list(rules_dir.glob('*.yaml')))} rule files")


def test_malformed_yaml_is_one_line_naming_the_file(rules_dir: Path) -> None:
    (rules_dir / "broken.yaml").write_text("kind: triage\nrules: [oops\n", encoding="utf-8")
    result = check(rules_dir)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "broken.yaml" in lines[0] and "invalid YAML" in lines[0]
    assert "Traceback" not in result.output


def test_a_duplicate_key_is_an_error_not_silently_dropped(rules_dir: Path) -> None:
    (rules_dir / "extra.yaml").write_text("kind: info\ntopics: []\ntopics: []\n", encoding="utf-8")
    result = check(rules_dir)
    assert result.exit_code == 1
    assert "extra.yaml:3: invalid YAML: duplicate key 'topics'" in result.output


def test_a_failing_example_names_the_file_and_the_rule(rules_dir: Path) -> None:
    decisions = rules_dir / "alertness_tone.yaml"
    text = decisions.read_text(encoding="utf-8")
    decisions.write_text(
        text.replace("fires: [hes all floppy,", "fires: [hes smiling and happy,"), encoding="utf-8"
    )
    result = check(rules_dir)
    assert result.exit_code == 1
    line = next(ln for ln in result.output.splitlines() if ": floppy: " in ln)
    assert re.fullmatch(
        rf"{re.escape(str(decisions))}:\d+: floppy: example should fire but did not: 'hes smiling and happy'",
        line,
    )


def test_a_schema_error_names_the_rule_field_and_the_line_of_the_field(rules_dir: Path) -> None:
    decisions = rules_dir / "alertness_tone.yaml"
    text = decisions.read_text(encoding="utf-8")
    decisions.write_text(
        text.replace("  - id: floppy\n    level: emergency", "  - id: floppy\n    level: critical"),
        encoding="utf-8",
    )
    level_line = decisions.read_text(encoding="utf-8").splitlines().index("    level: critical") + 1
    result = check(rules_dir)
    assert result.exit_code == 1
    line = next(ln for ln in result.output.splitlines() if ": floppy: level:" in ln)
    assert line == f"{decisions}:{level_line}: floppy: level: must be one of info, routine, urgent, emergency"


def test_an_unknown_rule_field_names_it(rules_dir: Path) -> None:
    decisions = rules_dir / "alertness_tone.yaml"
    text = decisions.read_text(encoding="utf-8")
    text = text.replace("  - id: floppy\n", "  - id: floppy\n    phrases: [limp]\n")
    decisions.write_text(text, encoding="utf-8")
    result = check(rules_dir)
    assert result.exit_code == 1
    assert re.search(rf"{re.escape(str(decisions))}:\d+: floppy: phrases: unknown field", result.output)


def test_a_rule_file_without_its_sign_off_fields_is_an_error(rules_dir: Path) -> None:
    decisions = rules_dir / "alertness_tone.yaml"
    text = decisions.read_text(encoding="utf-8")
    decisions.write_text(text.replace("reviewed_on: null\n", ""), encoding="utf-8")
    result = check(rules_dir)
    assert result.exit_code == 1
    assert f"{decisions}: reviewed_on: required" in result.output


def test_a_reviewer_without_a_date_is_an_error(rules_dir: Path) -> None:
    decisions = rules_dir / "alertness_tone.yaml"
    text = decisions.read_text(encoding="utf-8")
    decisions.write_text(text.replace("reviewed_by: null", "reviewed_by: Dr. Rivera"), encoding="utf-8")
    result = check(rules_dir)
    assert result.exit_code == 1
    assert "reviewed_by and reviewed_on are given together" in result.output


def test_a_term_defined_twice_is_an_error(rules_dir: Path) -> None:
    (rules_dir / "zz_extra.yaml").write_text(
        "kind: triage\nversion: 1\nreviewed_by: null\nreviewed_on: null\nterms:\n  limb: [arm]\n",
        encoding="utf-8",
    )
    result = check(rules_dir)
    assert result.exit_code == 1
    assert f"{rules_dir / 'zz_extra.yaml'}:6: limb: already defined in vocabulary.yaml" in result.output


def test_the_rule_set_version_changes_with_any_edit(rules_dir: Path) -> None:
    before = load_rules(rules_dir).version
    decisions = rules_dir / "alertness_tone.yaml"
    decisions.write_text(decisions.read_text(encoding="utf-8") + "\n# a reviewer's note\n", encoding="utf-8")
    after = parse_dir(rules_dir)[0].version
    assert before != after
    assert before.split(".")[0] == after.split(".")[0]  # the declared versions did not change


def test_an_unknown_kind_is_an_error(rules_dir: Path) -> None:
    (rules_dir / "extra.yaml").write_text("kind: triag\n", encoding="utf-8")
    result = check(rules_dir)
    assert result.exit_code == 1
    assert "extra.yaml: kind: unknown kind 'triag'" in result.output


def test_a_missing_kind_is_an_error(rules_dir: Path) -> None:
    (rules_dir / "extra.yaml").write_text("rules: []\n", encoding="utf-8")
    result = check(rules_dir)
    assert result.exit_code == 1
    assert "extra.yaml: kind: missing top-level 'kind'" in result.output


def test_load_rules_raises_a_rule_file_error(rules_dir: Path) -> None:
    (rules_dir / "broken.yaml").write_text("kind: [\n", encoding="utf-8")
    with pytest.raises(RuleFileError, match=r"broken\.yaml"):
        load_rules(rules_dir)


def test_a_reply_over_the_sms_budget_is_reported(rules_dir: Path) -> None:
    replies = rules_dir / "replies.yaml"
    text = replies.read_text(encoding="utf-8")
    replies.write_text(
        text.replace("Not a diagnosis.", "Not a diagnosis. " + "x" * 300),
        encoding="utf-8",
    )
    result = check(rules_dir)
    assert result.exit_code == 1
    assert "SMS segments, more than 2" in result.output


def test_a_bad_emoji_entry_names_the_emoji(rules_dir: Path) -> None:
    language = rules_dir / "language.yaml"
    text = language.read_text(encoding="utf-8")
    language.write_text(
        text.replace('"🔵": {en: blue, es: azul}', '"🔵": {en: blue}\n    "x": blue'), encoding="utf-8"
    )
    result = check(rules_dir)
    assert result.exit_code == 1
    assert "language.emoji" in result.output
    assert "'🔵': must be a word or give words for en and es" in result.output
    assert "'x': keys must be emoji" in result.output


def test_bad_shorthand_digit_and_swap_entries_are_reported(rules_dir: Path) -> None:
    language = rules_dir / "language.yaml"
    text = language.read_text(encoding="utf-8")
    text = text.replace("shorthand: {bby: baby,", 'shorthand: {"Bby": baby, x: "2x",')
    text = text.replace('digit_words: {"2": [to, too], "4": [for]}', 'digit_words: {"two": [to]}')
    text = text.replace("phonetic_swaps: [[b, v],", "phonetic_swaps: [[b, b], [b, v],")
    language.write_text(text, encoding="utf-8")
    result = check(rules_dir)
    assert result.exit_code == 1
    assert "'Bby': keys must be one lower-case token" in result.output
    assert "'x': must be plain lower-case words" in result.output
    assert "'two': keys must be one lower-case token of digits" in result.output
    assert "language.phonetic_swaps" in result.output


def test_a_plain_word_opt_out_example_read_otherwise_fails_the_check(rules_dir: Path) -> None:
    keywords = rules_dir / "keywords.yaml"
    text = keywords.read_text(encoding="utf-8")
    keywords.write_text(
        text.replace("neither: [please stop the shaking,", "neither: [stop texting me,"), encoding="utf-8"
    )
    result = check(rules_dir)
    assert result.exit_code == 1
    assert re.search(
        r"keywords\.yaml:\d+: opt_out\.examples\.neither: 'stop texting me' is read as stop", result.output
    )


def test_a_fixed_reply_longer_than_two_segments_fails_the_check(rules_dir: Path) -> None:
    keywords = rules_dir / "keywords.yaml"
    text = keywords.read_text(encoding="utf-8")
    keywords.write_text(
        text.replace("We are so deeply sorry for the loss of your baby.", "We are so sorry. " * 40),
        encoding="utf-8",
    )
    result = check(rules_dir)
    assert result.exit_code == 1
    assert re.search(r"keywords\.yaml:\d+: replies\.news_loss\.en: 6 SMS segments, over 2", result.output)


@pytest.mark.parametrize(
    ("file", "old", "new", "error"),
    [
        (
            "keywords.yaml",
            "    es: [AYUDA, MENU]",
            "    es: [AYUDA, MENU]\n    fr: [AIDE]",
            r"keywords\.yaml:\d+: keywords\.help\.fr: unknown field",
        ),
        (
            "keywords.yaml",
            'en: [START, UNSTOP, "YES", Y, RESUME]',
            "en: [START, UNSTOP, YES, Y, RESUME]",  # a bare YES is a YAML boolean
            r"keywords\.yaml:\d+: keywords\.start\.en\.2: Input should be a valid string",
        ),
        (
            "clinic.yaml",
            '    es: "smsbot: alerta {level} de una familia de {clinic}. Abra {link}"\n',
            "",
            r"clinic\.yaml:\d+: replies\.oncall_alert\.es: required",
        ),
        (
            "checkins.yaml",
            "  - id: after_urgent\n",
            "  - id: after_urgent\n    anchor: report\n",
            r"checkins\.yaml:\d+: after_urgent: anchor: must be one of event, birth",
        ),
    ],
)
def test_every_kind_names_the_file_line_and_field_of_a_problem(
    rules_dir: Path, file: str, old: str, new: str, error: str
) -> None:
    path = rules_dir / file
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    result = check(rules_dir)
    assert result.exit_code == 1
    assert re.search(error, result.output), result.output


def test_the_check_reports_every_text_with_its_segments(rules_dir: Path) -> None:
    result = check(rules_dir)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name in (
        "replies.emergency.en",
        "replies.routine.es",
        "keywords.ack.en",
        "keywords.still_emergency.es",
        "checkins.after_routine.1.es",
        "clinic.consent_given.en",
    ):
        (line,) = [line for line in lines if line.endswith(" variants)") and f" {name} (" in line]
        assert re.match(r"  ok +[12] seg +\d+ chars", line), line


@pytest.mark.parametrize(
    ("file", "old", "new", "problem"),
    [
        # A reason that fits alone but pushes its emergency reply to a third segment.
        (
            "head_injury.yaml",
            "A fall or a hit to the head needs to be checked now.",
            "A fall or a hit to the head needs to be checked now. " + "Keep the head still. " * 8,
            r"FAIL 3 seg .* replies\.emergency\.en",
        ),
        (
            "checkins.yaml",
            "cuentenos que ve",
            "cuéntenos qué ve",
            r"Spanish is written without accented vowels",
        ),
        ("keywords.yaml", "Got it. Text us anytime", "Got it’ Text us anytime", r"not GSM-7: '’'"),
        (
            "replies.yaml",
            "Call {emergency_number} now or go to the nearest emergency department.",
            "Stay calm. " * 15 + "Call {emergency_number} now or go to the nearest emergency department.",
            r"the emergency number must come within the first 160 characters",
        ),
    ],
)
def test_a_text_over_budget_outside_gsm7_or_misspelt_fails_the_check(
    rules_dir: Path, file: str, old: str, new: str, problem: str
) -> None:
    path = rules_dir / file
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    result = check(rules_dir)
    assert result.exit_code == 1
    assert re.search(problem, result.output), result.output
