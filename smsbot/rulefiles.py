"""Reading rule files: every YAML file in ``rules/`` names its ``kind``.

``smsbot rules check`` (``smsbot.cli.rules``) lists the kinds and checks each file with its
kind's checker. An unknown kind is an error there: a typo in ``kind`` must not silently
switch a clinical file off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


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
