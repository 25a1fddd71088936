"""The learned second opinion at run time: the shipped classifier and what it vouches for.

A multinomial logistic regression over hashed n-grams (``features.py``), trained on the
labelled corpus by ``smsbot triage train`` (``training.py``). Inference is numpy only: two
table lookups and sums per text. It answers with the highest level whose probability passed
the threshold calibrated by cross-validation; ``assess()`` lets that only raise a level.

The artifact is one gzip file: a JSON header line (thresholds, bias, training facts), then the
weights and idf as little-endian float16. No pickle, so loading it cannot run code.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from smsbot.triage.features import CHAR_NGRAMS, DIMENSIONS, HASH_BITS, hashed_ngrams
from smsbot.vocabulary import LEVELS

ARTIFACT = Path(__file__).with_name("classifier.bin")
# What an artifact's weights mean; one written for another layout must be retrained, not read.
LAYOUT = {"format": 1, "levels": list(LEVELS), "hash_bits": HASH_BITS, "char_ngrams": list(CHAR_NGRAMS)}
# The levels the classifier may raise a decision to, most severe first.
RAISES = ("emergency", "urgent")


class ClassifierFileError(ValueError):
    """The classifier artifact is missing, damaged or built for other features."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason} (rebuild it with `smsbot triage train`)")


@dataclass(frozen=True)
class Opinion:
    """The most severe level the classifier vouches for, with the probability that passed."""

    level: str
    probability: float

    @property
    def flag(self) -> str:
        """How a decision names it, so a clinician can see why: ``model:emergency:0.91``."""
        return f"model:{self.level}:{self.probability:.2f}"


def raise_scores(probabilities: np.ndarray) -> dict[str, np.ndarray]:
    """What each threshold is compared with: P(emergency), and P(urgent or emergency).

    ``probabilities`` holds one value per level in its last axis (one text, or many).
    """
    emergency = probabilities[..., LEVELS.index("emergency")]
    return {"emergency": emergency, "urgent": emergency + probabilities[..., LEVELS.index("urgent")]}


def vouch(
    probabilities: Sequence[float], thresholds: Mapping[str, float], below: str | None = None
) -> Opinion | None:
    """The most severe level that ``probabilities`` (one per level) put above its threshold;
    with ``below``, only a level under that one."""
    scores = raise_scores(np.asarray(probabilities))
    for level in RAISES[RAISES.index(below) + 1 :] if below else RAISES:
        if scores[level] > thresholds[level]:
            return Opinion(level, float(scores[level]))
    return None


class Classifier:
    """Weights per hashed n-gram and level, and the thresholds above which it may raise a level."""

    def __init__(
        self,
        weights: np.ndarray,
        idf: np.ndarray,
        bias: list[float],
        thresholds: Mapping[str, float],
        training: Mapping[str, Any],
    ) -> None:
        if weights.shape != (DIMENSIONS, len(LEVELS)) or idf.shape != (DIMENSIONS,):
            raise ValueError(f"weights {weights.shape} / idf {idf.shape} do not fit {DIMENSIONS} buckets")
        self.weights = weights.astype("<f2")
        self.idf = idf.astype("<f2")
        self.bias = [float(b) for b in bias]
        self.thresholds = {level: float(thresholds[level]) for level in RAISES}
        self.training = dict(training)
        # Per bucket: the four level weights times idf, then idf squared (for the length). A
        # text's score is then one lookup and one sum per block.
        idf32 = self.idf.astype(np.float32)
        scaled = self.weights.astype(np.float32) * idf32[:, None]
        self._table = np.ascontiguousarray(np.column_stack((scaled, idf32 * idf32)))
        # Stored with every decision it was asked about: the same artifact, the same version.
        self.version = hashlib.sha256(self.payload()).hexdigest()[:12]

    def probabilities(self, text: str) -> tuple[float, ...]:
        """P(level) for each of LEVELS (info … emergency)."""
        buckets, words_start = hashed_ngrams(text)
        rows = self._table.take(buckets, axis=0)
        # Sum per block (characters, then words if any); four small numbers are then quicker
        # in plain Python than in numpy.
        blocks = np.add.reduceat(rows, (0, words_start) if words_start < len(buckets) else (0,)).tolist()
        # Each block is an idf-weighted bag of n-grams scaled to unit length (see training).
        logits = list(self.bias)
        for *sums, squares in blocks:
            length = math.sqrt(squares)
            logits = [logit + total / length for logit, total in zip(logits, sums, strict=True)]
        top = max(logits)
        odds = [math.exp(logit - top) for logit in logits]
        whole = sum(odds)
        return tuple(o / whole for o in odds)

    def calibrated(self, thresholds: Mapping[str, float]) -> Classifier:
        """The same classifier raising above ``thresholds``."""
        return Classifier(self.weights, self.idf, self.bias, thresholds, self.training)

    def covers(self, text: str, age_days: int | None) -> bool:
        """Whether its corpus holds texts like this one: long enough, about a baby that young.

        Under SHORTEST_TEXT_WORDS words the corpus holds next to no routine texts (a short
        symptom text there is nearly always an emergency), so "my baby is shaking" would read
        as one. Labels depend on age (a fever is an emergency under 3 months, urgent after) and
        the classifier reads only the text: unknown age is the age the corpus assumes.
        """
        words = len(text.split())
        young = age_days is None or age_days <= self.training["oldest_age_days"]
        return words >= self.training["shortest_text_words"] and young

    def opinion(self, text: str, below: str | None = None) -> Opinion | None:
        """The highest level (under ``below``, if given) whose calibrated threshold the text passes."""
        return vouch(self.probabilities(text), self.thresholds, below)

    def header(self) -> dict[str, Any]:
        return {
            **LAYOUT,
            "bias": self.bias,
            "thresholds": self.thresholds,
            "training": self.training,
        }

    def payload(self) -> bytes:
        """The artifact's content before compression (its hash is the classifier's version)."""
        header = json.dumps(self.header(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return header.encode() + b"\n" + self.weights.tobytes() + self.idf.tobytes()

    def save(self, path: Path) -> None:
        # mtime=0: the same classifier always gives the same bytes.
        path.write_bytes(gzip.compress(self.payload(), compresslevel=9, mtime=0))


def read_classifier(path: Path) -> Classifier:
    """Load an artifact written by ``Classifier.save``; a bad file is a ClassifierFileError."""
    try:
        payload = gzip.decompress(path.read_bytes())
        line, _, arrays = payload.partition(b"\n")
        header = json.loads(line)
    except (OSError, EOFError, ValueError) as exc:
        raise ClassifierFileError(path, f"unreadable ({exc})") from None
    for key, value in LAYOUT.items():
        if header.get(key) != value:
            raise ClassifierFileError(path, f"{key} is {header.get(key)!r}, this smsbot reads {value!r}")
    sizes = (DIMENSIONS * len(LEVELS) * 2, DIMENSIONS * 2)
    if len(arrays) != sum(sizes):
        raise ClassifierFileError(path, f"{len(arrays)} bytes of weights, expected {sum(sizes)}")
    weights = np.frombuffer(arrays[: sizes[0]], dtype="<f2").reshape(DIMENSIONS, len(LEVELS))
    idf = np.frombuffer(arrays[sizes[0] :], dtype="<f2")
    return Classifier(weights, idf, header["bias"], header["thresholds"], header["training"])


@lru_cache(maxsize=1)
def shipped_classifier() -> Classifier:
    """The classifier shipped inside the package (read once per process)."""
    return read_classifier(ARTIFACT)
