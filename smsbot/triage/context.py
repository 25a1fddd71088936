"""Context of every finding: whose sign it is, when, and whether it is real (ConText family).

NegEx (Chapman et al. 2001) and ConText (Harkema et al. 2009) read a clinical note by
finding cue phrases ("my husband", "what if", "the doctor said") and giving each finding in
the cue's scope an attribute. Here the cues are ``Trigger``s from ``rules/context.yaml``;
negation keeps its own, older marker in the matcher. A finding (a phrase of a term or rule,
or a temperature reading) is marked only when it lies wholly inside a scope, so a red flag
that runs past the end of a "what if" clause still counts: the safer reading wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from smsbot.triage.matcher import BRACKET, HARD, SOFT, Match
from smsbot.triage.model import Trigger


@dataclass(frozen=True)
class Scope:
    """Token positions [start, end) where ``trigger`` gives its mark; ``cue`` is the cue itself."""

    trigger: Trigger
    start: int
    end: int
    cue: tuple[int, int]

    def covers(self, start: int, end: int) -> bool:
        """Whether a finding at [start, end) takes the mark: wholly inside, and not a longer
        phrase that merely contains the cue ("xanax bottle open" is no object)."""
        if not (self.start <= start and end <= self.end):
            return False
        cue_start, cue_end = self.cue
        contains_cue = start <= cue_start and cue_end <= end and (end - start) > (cue_end - cue_start)
        return not contains_cue


class ContextReader:
    """The triggers of a rule set, ready to place scopes in a tokenised text."""

    def __init__(self, triggers: Iterable[Trigger], contrasts: frozenset[str]) -> None:
        self.triggers = {t.id: t for t in triggers}
        self.contrasts = contrasts

    def scopes(self, tokens: Sequence[str], matches: Sequence[Match]) -> list[Scope]:
        """Every trigger's scope in this text (most texts have none: then this is cheap)."""
        cues = [m for m in matches if m.owner.startswith("ctx:")]
        if not cues:
            return []
        words: dict[str, list[tuple[int, int]]] = {}
        for m in matches:
            if m.owner.startswith("cue:"):
                words.setdefault(m.owner[4:], []).append((m.start, m.end))
        # A cue word inside another cue ("baby" in "my sisters baby") ends nothing.
        cue_spans = [(c.start, c.end) for c in cues]
        for spans in words.values():
            spans[:] = [
                (s, e)
                for s, e in spans
                if not any(cs <= s and e <= ce and (cs, ce) != (s, e) for cs, ce in cue_spans)
            ]
        out: list[Scope] = []
        for cue in cues:
            trigger = self.triggers[cue.owner[4:]]
            ends = [span for t in trigger.ends_at for span in words.get(t, ())]
            if any(s <= cue.start and cue.end <= e for s, e in ends):
                continue
            sentence = self._bounds(tokens, cue.start, cue.end, {HARD})
            if any(
                sentence[0] <= s and e <= sentence[1] for t in trigger.void_if for s, e in words.get(t, ())
            ):
                continue
            if trigger.reach == "answer":
                whole = self._bounds(tokens, cue.start, cue.end, {HARD, BRACKET}) == (cue.start, cue.end)
                if whole and cue.start > 0:
                    lo, _ = self._bounds(tokens, cue.start - 1, cue.start - 1, {HARD})
                    out.append(Scope(trigger, lo, cue.start - 1, (cue.start, cue.end)))
                continue
            # An aside in brackets stays in the cue's clause ("a fever (101) myself").
            stops = {HARD} if trigger.reach == "sentence" else {HARD, SOFT}
            lo, hi = self._bounds(tokens, cue.start, cue.end, stops | self.contrasts)
            start, end = cue.start, cue.end
            if trigger.direction in ("forward", "both"):
                end = min(hi, cue.end + trigger.window, *(s for s, _ in ends if s >= cue.end))
            if trigger.direction in ("backward", "both"):
                start = max(lo, cue.start - trigger.window, *(e for _, e in ends if e <= cue.start))
            out.append(Scope(trigger, start, end, (cue.start, cue.end)))
        return out

    @staticmethod
    def _bounds(
        tokens: Sequence[str], start: int, end: int, stops: set[str] | frozenset[str]
    ) -> tuple[int, int]:
        """The stretch around tokens[start:end] not crossing any of ``stops``."""
        lo = start
        while lo > 0 and tokens[lo - 1] not in stops:
            lo -= 1
        hi = end
        while hi < len(tokens) and tokens[hi] not in stops:
            hi += 1
        return lo, hi


Spans = Mapping[str, Sequence[tuple[int, int]]]


def marks_of(scopes: Sequence[Scope], start: int, end: int, spans: Spans) -> frozenset[str]:
    """The marks the scopes give a finding at tokens[start:end].

    ``spans`` holds where each term's phrases (and ``READING``, the temperatures) were found,
    for the triggers that mark only some of them.
    """
    if not scopes:
        return frozenset()
    return frozenset(
        s.trigger.mark
        for s in scopes
        if s.covers(start, end) and (not s.trigger.only or _within(s.trigger.only, start, end, spans))
    )


def _within(terms: frozenset[str], start: int, end: int, spans: Spans) -> bool:
    """Whether tokens[start:end] lie inside a phrase of one of ``terms``."""
    return any(s <= start and end <= e for term in terms for s, e in spans.get(term, ()))
