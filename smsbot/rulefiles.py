"""The one typed layer over ``rules/``: every YAML file is read strictly, and parsed by its
kind's pydantic models into typed values, or refused with a ``RuleFileError`` that names the
file, the line, the rule (or term, or programme) and the field.

The code defines what each kind may say, with ``extra="forbid"`` so a misspelt field is an
error rather than a silently ignored line; the YAML says it. The people editing these files
are clinicians reviewing wording, not Python programmers, so every problem reads as one line.
Every file names its ``kind``; ``smsbot rules check`` (``smsbot.cli.rules``) lists the kinds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from smsbot.vocabulary import LANGS


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


# Every model of a rule file: frozen once read, and no field the code does not know.
RULE_FILE = ConfigDict(extra="forbid", frozen=True)

Model = TypeVar("Model", bound=BaseModel)
Text = Annotated[str, Field(min_length=1, pattern=r"\S")]  # something to read, not only spaces


def per_language(name: str, value: Any, doc: str) -> type[BaseModel]:
    """A rule-file model with one required field of ``value`` for each language we text in."""
    fields: dict[str, Any] = {lang: (value, ...) for lang in LANGS}
    return create_model(name, __config__=RULE_FILE, __doc__=doc, **fields)


Texts = per_language("Texts", Text, "One text per language we text in.")


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


def parse(
    path: Path,
    data: dict[str, Any],
    model: type[Model],
    *,
    named_lists: Sequence[str] = (),
    named_tables: Sequence[str] = (),
) -> tuple[Model | None, list[RuleFileError]]:
    """``data`` (read from ``path``) as ``model``, or None and every problem found.

    An error inside an item of a ``named_lists`` section is named by the item's ``id``, one
    inside a ``named_tables`` section by its key, as clinicians know them.
    """
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        lines = YamlLines(path)
        return None, [
            _error(path, data, err, lines, named_lists, named_tables) for err in exc.errors(include_url=False)
        ]


def parse_one(path: Path, model: type[Model], **naming: Sequence[str]) -> Model:
    """Read and parse one file of a kind; its first problem raised as a RuleFileError."""
    parsed, problems = parse(path, read_rule_file(path), model, **naming)
    if parsed is None:
        raise problems[0]
    return parsed


class YamlLines:
    """Line numbers of a YAML file's nodes, by their path of keys and indices."""

    def __init__(self, path: Path) -> None:
        try:
            self.root: yaml.Node | None = yaml.compose(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, OSError, UnicodeDecodeError):
            self.root = None

    def at(self, loc: Sequence[Any]) -> int | None:
        """The line of the deepest node ``loc`` reaches (1-based)."""
        node, line = self.root, None
        for key in loc:
            if isinstance(node, yaml.MappingNode):
                found = next(((k, v) for k, v in node.value if k.value == str(key)), None)
                if found is None:
                    break
                line, node = found[0].start_mark.line + 1, found[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                node = node.value[key]
                line = node.start_mark.line + 1
            else:
                break
        return line


def _error(
    path: Path,
    data: dict[str, Any],
    err: Any,
    lines: YamlLines,
    named_lists: Sequence[str],
    named_tables: Sequence[str],
) -> RuleFileError:
    """One pydantic error as a RuleFileError: file, line, rule or term id, field, plain reason."""
    loc = tuple(
        part for part in err["loc"] if not (isinstance(part, str) and part.startswith(("function-", "dict[")))
    )
    rule_id, rest = None, loc
    if len(loc) >= 2 and loc[0] in named_lists and isinstance(loc[1], int):
        item = data.get(loc[0])[loc[1]]
        rule_id = str(item.get("id")) if isinstance(item, dict) and "id" in item else None
        rest = loc[2:] if rule_id is not None else loc
    elif len(loc) >= 2 and loc[0] in named_tables:
        rule_id, rest = str(loc[1]), loc[2:]
    return RuleFileError(
        path,
        reason(err),
        rule_id=rule_id,
        field=".".join(str(p) for p in rest) or None,
        line=lines.at(loc),
    )


def reason(err: Any) -> str:
    """What pydantic found, in words a reviewer reads."""
    kind, msg = err["type"], err["msg"]
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return "must be one of " + expected.replace("'", "").replace(" or ", ", ")
    return msg
