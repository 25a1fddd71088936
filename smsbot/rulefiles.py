"""Reading rule files and checking them by their ``kind``.

Every YAML file in ``rules/`` names its ``kind``; each kind registers one validator here, so
``smsbot rules check`` can vouch for files owned by other parts of smsbot (keywords,
check-ins) without knowing their schema. An unknown kind is an error: a typo in ``kind``
must not silently switch a clinical file off.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

Validator = Callable[[Path, dict[str, Any]], list[str]]

VALIDATORS: dict[str, Validator] = {}

# Modules that register validators when imported; add yours here.
KIND_MODULES: tuple[str, ...] = (
    "smsbot.triage.rules",
    "smsbot.keywords",
    "smsbot.programmes",
    "smsbot.clinic_texts",
)


class RuleFileError(ValueError):
    """A rule file is unreadable or breaks the schema; the message names file, rule, field, line."""

    def __init__(
        self,
        path: Path | str,
        reason: str,
        *,
        rule_id: str | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        self.path, self.reason, self.rule_id, self.field, self.line = path, reason, rule_id, field, line
        where = f"{path}:{line}" if line else f"{path}"
        parts = [where]
        if rule_id:
            parts.append(rule_id)
        parts.append(f"{field}: {reason}" if field else reason)
        super().__init__(": ".join(parts))


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: PyYAML would silently keep only the last one,
    quietly dropping a clinician's phrases or a whole rule field."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def register(kind: str) -> Callable[[Validator], Validator]:
    """Decorator: make ``func`` the validator for rule files of ``kind``."""

    def decorate(func: Validator) -> Validator:
        VALIDATORS[kind] = func
        return func

    return decorate


def read_rule_file(path: Path) -> dict[str, Any]:
    """Parse one YAML rule file into a mapping with a ``kind``, or raise a one-line RuleFileError."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        raise RuleFileError(path, f"invalid YAML: {exc.problem}", line=line) from None
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        raise RuleFileError(path, f"unreadable: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise RuleFileError(path, "top level must be a mapping with a 'kind' key")
    if not isinstance(data.get("kind"), str):
        raise RuleFileError(path, "missing top-level 'kind'", field="kind")
    return data


def rule_files(rules_dir: Path) -> list[Path]:
    """The rule files of a directory, in a stable order."""
    return sorted([*rules_dir.glob("*.yaml"), *rules_dir.glob("*.yml")])


def check_rules_dir(rules_dir: Path) -> tuple[list[str], int]:
    """Validate every rule file; returns (problems as ``file: rule: reason`` lines, files checked)."""
    for module in KIND_MODULES:
        importlib.import_module(module)
    problems: list[str] = []
    files = rule_files(rules_dir)
    if not files:
        return [f"{rules_dir}: no rule files (*.yaml)"], 0
    for path in files:
        try:
            data = read_rule_file(path)
        except RuleFileError as exc:
            problems.append(str(exc))
            continue
        validator = VALIDATORS.get(data["kind"])
        if validator is None:
            known = ", ".join(sorted(VALIDATORS))
            problems.append(f"{path}: kind: unknown kind {data['kind']!r} (known: {known})")
            continue
        problems.extend(validator(path, data))
    return problems, len(files)
