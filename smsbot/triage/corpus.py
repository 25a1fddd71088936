"""The labelled corpus (``corpus/`` in the repository): batches of parent texts with their levels.

A file is either a plain list of cases (the older files) or a blind batch: a mapping with
``batch``, ``source``, ``focus``, the ``first_run`` scores recorded when it arrived, and
``cases``. Files under ``frozen/`` are never trained or tuned on; only their aggregate scores
are ever shown.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from smsbot.triage.scores import Scores
from smsbot.vocabulary import LANGS, LEVELS

FROZEN = "frozen"
# Every labelled text is about a baby under 3 months (or of unknown age, taken as about two
# months): what the labels mean, and so the oldest baby a classifier trained here knows.
OLDEST_AGE_DAYS = 90
# Texts shorter than this (in words) are nearly all emergencies or questions here: routine is
# 0-8% of the labels under 10 words and 15-53% from there on. A classifier trained here does not
# speak on shorter texts; on the blind batches 25-28 and 30, held out, that cost no right raise.
SHORTEST_TEXT_WORDS = 10


class CorpusError(ValueError):
    """A corpus file is unreadable or a case is malformed; the message names the file and case."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class Case:
    text: str
    level: str
    lang: str


@dataclass(frozen=True)
class FirstRun:
    """Scores of the engine on main when a blind batch arrived, before any tuning."""

    date: str
    engine: str
    scores: Scores


@dataclass(frozen=True)
class Batch:
    name: str  # path inside the corpus directory, e.g. "blind/b25.yaml"
    cases: tuple[Case, ...]
    first_run: FirstRun | None
    frozen: bool


def default_corpus_dir() -> Path:
    """``corpus/`` beside the package in a source checkout (it is not installed with the wheel)."""
    return Path(__file__).resolve().parents[2] / "corpus"


def _case(path: Path, index: int, item: Any) -> Case:
    if not isinstance(item, dict):
        raise CorpusError(path, f"case {index + 1}: expected a mapping with text, level and lang")
    text, level, lang = item.get("text"), item.get("level"), item.get("lang")
    if not isinstance(text, str) or not text.strip():
        raise CorpusError(path, f"case {index + 1}: 'text' must be a non-empty string")
    if level not in LEVELS:
        raise CorpusError(path, f"case {index + 1}: 'level' must be one of {', '.join(LEVELS)}")
    if lang not in LANGS:
        raise CorpusError(path, f"case {index + 1}: 'lang' must be one of {', '.join(LANGS)}")
    return Case(text, level, lang)


def _first_run(path: Path, block: Any) -> FirstRun | None:
    if block is None:
        return None
    names = Scores.names()
    if not isinstance(block, dict) or any(block.get(name) is None for name in ("date", "engine", *names)):
        raise CorpusError(path, f"first_run needs date, engine and {', '.join(names)}")
    return FirstRun(str(block["date"]), str(block["engine"]), Scores(**{name: block[name] for name in names}))


def read_batch(path: Path, root: Path) -> Batch:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CorpusError(path, f"unreadable: {exc}") from None
    first_run = None
    if isinstance(data, dict):
        first_run = _first_run(path, data.get("first_run"))
        data = data.get("cases")
    if not isinstance(data, list):
        raise CorpusError(path, "expected a list of cases, or a batch with 'cases'")
    relative = path.relative_to(root)
    return Batch(
        name=relative.as_posix(),
        cases=tuple(_case(path, i, item) for i, item in enumerate(data)),
        first_run=first_run,
        frozen=relative.parts[0] == FROZEN,
    )


def load_corpus(root: Path | None = None) -> list[Batch]:
    """Every ``*.yaml`` batch under ``root``, top-level files first, then by path."""
    root = (root or default_corpus_dir()).resolve()
    if not root.is_dir():
        raise CorpusError(root, "no corpus directory here (pass --corpus)")
    paths = sorted(root.rglob("*.yaml"), key=lambda p: (len(p.relative_to(root).parts), p.as_posix()))
    return [read_batch(path, root) for path in paths]


def training_cases(batches: list[Batch]) -> list[Case]:
    """Every case outside ``frozen/``, in corpus order: what the classifier learns from."""
    return [case for batch in batches if not batch.frozen for case in batch.cases]


def corpus_hash(cases: Sequence[Case]) -> str:
    """Which texts and labels a classifier learnt from, to tell when its artifact is stale."""
    digest = hashlib.sha256()
    for case in cases:
        digest.update(f"{case.level}\t{case.lang}\t{case.text}\n".encode())
    return digest.hexdigest()[:12]
