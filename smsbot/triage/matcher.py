"""Read a parent's text the way people really text: normalise, find phrases, negation, numbers.

Speed matters (every inbound message and every ``rules check`` example passes here), so all
phrases are compiled once into a trie of words (and stems): a message is tokenised once, and
from each token only the branches that token opens are followed, with the first step cached
per word. Cost grows with message length and with what actually matches, not with the
number of rules.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import product

from rapidfuzz import fuzz, process

from smsbot.triage.model import Language, Settings

GAP = "..."
HARD = "."  # sentence end: gaps and negation stop here
SOFT = ","  # clause break: negation stops here, a gap may cross it
# An aside in brackets belongs to its sentence and its clause ("a fever (101) myself", "my nephew
# (he's 6) had a seizure"); it stops a negation, and a lone "(no)" still answers what came before.
BRACKET = "("
_TOKEN = re.compile(r"\d+(?:[.,:/]\d+)*|[a-z]+|[.;!?()\[\]\n]|,|[^\x00-\x7f]")
_APOSTROPHE = re.compile(r"(?<=[a-z])['’`´](?=[a-z])")
_REPEATS = re.compile(r"(.)\1{2,}")
_DOUBLES = re.compile(r"(.)\1+")
_COMBINING = re.compile(r"[\u0300-\u036f]")
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)?$")
_BRACKETS = frozenset("()[]")
# Presentation selectors and skin tones only restyle the emoji before them: "🌡️" is "🌡".
_EMOJI_STYLE = re.compile("[\ufe0e\ufe0f\U0001f3fb-\U0001f3ff]")


def normalise(text: str) -> str:
    """Lower-case, strip accents ("está" → "esta") and in-word apostrophes ("isn't" → "isnt")."""
    text = text.lower()
    if not text.isascii():  # most texts are plain ASCII: skip the Unicode work for them
        text = text.replace("°", " deg ").replace("º", " deg ")
        text = _COMBINING.sub("", unicodedata.normalize("NFKD", text))
    return _APOSTROPHE.sub("", text)


def tokenise(text: str, emoji: Mapping[str, str] | None = None) -> list[str]:
    """Words, numbers and boundary marks; emoji end a clause like a full stop, brackets like a comma.

    ``emoji`` maps an emoji to the word(s) it stands for ("lips 🔵" reads "lips blue"); an
    emoji it does not list still ends the clause.
    """
    text = normalise(text)
    if not text.isascii():
        text = _EMOJI_STYLE.sub("", text)
        if emoji:
            text = "".join(f" {emoji[ch]} " if ch in emoji else ch for ch in _emoji_split(text, emoji))
    out = []
    for tok in _TOKEN.findall(text):
        if tok == SOFT or (tok[0].isalnum() and tok.isascii()):
            out.append(tok)
        elif tok in _BRACKETS:
            out.append(BRACKET)
        else:
            out.append(HARD)
    return out


def _emoji_split(text: str, emoji: Mapping[str, str]) -> list[str]:
    """``text`` as single characters, except that multi-character emoji keys stay whole."""
    longest = max(map(len, emoji))
    out, i = [], 0
    while i < len(text):
        for size in range(min(longest, len(text) - i), 0, -1):
            if size == 1 or text[i : i + size] in emoji:
                out.append(text[i : i + size])
                i += size
                break
    return out


def number(token: str) -> float | None:
    """A plain number token ("38,2" in Spanish style too), else None; times like 10:38 are not."""
    if not token[:1].isdigit():
        return None
    return float(token.replace(",", ".")) if _NUMBER.match(token) else None


@dataclass
class Match:
    """One phrase of one owner found at tokens[start:end]."""

    owner: str  # "rule:<id>", "term:<id>", "topic:<id>", "ctx:<trigger id>", "pseudo"
    start: int
    end: int
    negated: bool = False
    marks: frozenset[str] = frozenset()  # given by the context layer (context.py)


class _Node:
    """A trie node: phrases sharing a beginning share the work of matching it."""

    __slots__ = ("gap", "owners", "stem_lengths", "stems", "words")

    def __init__(self) -> None:
        self.words: dict[str, _Node] = {}
        self.stems: dict[str, _Node] = {}
        self.stem_lengths: tuple[int, ...] = ()
        self.gap: _Node | None = None
        self.owners: tuple[str, ...] = ()

    def child(self, item: str) -> _Node:
        if item == GAP:
            self.gap = self.gap or _Node()
            return self.gap
        table = self.stems if item.endswith("*") else self.words
        return table.setdefault(item.rstrip("*"), _Node())

    def freeze(self) -> None:
        """Fix lookup order once built: stems shortest first, owners without duplicates."""
        self.stem_lengths = tuple(sorted({len(s) for s in self.stems}))
        self.owners = tuple(dict.fromkeys(self.owners))
        for node in (*self.words.values(), *self.stems.values(), *([self.gap] if self.gap else [])):
            node.freeze()


class Lexicon:
    """All phrases of a rule set compiled into one token trie, plus the language's cue words."""

    def __init__(
        self,
        phrases: Iterable[tuple[str, str]],
        terms: dict[str, Sequence[str]],
        language: Language,
        settings: Settings,
    ) -> None:
        self.settings = settings
        self.cues = frozenset(language.negation_cues)
        self.breaks = frozenset(language.scope_breaks) | frozenset(language.contrasts) | {HARD, SOFT, BRACKET}
        # A gap may cross a comma ("it wont stop, even when i hold it") but not a "but".
        self.gap_stops = self.cues | frozenset(language.contrasts) | {HARD}
        self.continuers = frozenset(language.continuers)
        self.shorthand = dict(language.shorthand)
        self.digit_words = dict(language.digit_words)
        self.swaps = tuple(language.phonetic_swaps)
        self.root = _Node()
        vocabulary: set[str] = set(self.cues | self.breaks | self.continuers)
        vocabulary.update(language.numbers, language.age_units, language.non_temperature_units)
        vocabulary.update(language.decimal_words, language.zero_words)
        vocabulary.update(language.celsius_units, language.fahrenheit_units, language.degree_units)
        vocabulary.update(language.temperature_context, language.not_age_cues, *language.hints.values())
        vocabulary.update(w for words in self.shorthand.values() for w in words)
        # Emoji read as words, one table per language (style marks stripped as in tokenise).
        self.emoji: dict[str, dict[str, str]] = {}
        for char, words in language.emoji.items():
            for lang, word in words.items():
                self.emoji.setdefault(lang, {})[_EMOJI_STYLE.sub("", normalise(char))] = word
                vocabulary.update(word.split())
        all_stems: set[str] = set()
        phrase_words: set[str] = set()
        for owner, phrase in [*phrases, *(("pseudo", p) for p in language.pseudo_negations)]:
            for pattern in expand(phrase, terms):
                node = self.root
                for item in pattern:
                    node = node.child(item)
                node.owners += (owner,)
                words = [t for t in pattern if t != GAP and not t.endswith("*")]
                vocabulary.update(words)
                if owner != "pseudo":
                    phrase_words.update(words)
                all_stems.update(t[:-1] for t in pattern if t.endswith("*"))
        self.root.freeze()
        self.all_stems = frozenset(all_stems)
        self.all_stem_lengths = sorted({len(s) for s in all_stems})
        self.vocabulary = frozenset(vocabulary)
        self.ignore = frozenset(settings.fuzzy_ignore)
        # Misspellings are corrected only towards rule words, never towards cue words: a typo
        # must not turn into "though" or "nothing" and bend a negation.
        by_letter: dict[str, list[str]] = defaultdict(list)
        for word in sorted(phrase_words - self.cues - self.breaks - self.continuers):
            if len(word) >= settings.fuzzy_min_length and word.isalpha():
                by_letter[word[0]].append(word)
        self.fuzzy_targets = dict(by_letter)
        self.canonical = lru_cache(maxsize=65536)(self._canonical)
        self.first_edges = lru_cache(maxsize=65536)(self._first_edges)
        self.respelled = lru_cache(maxsize=65536)(self._respelled)

    def _first_edges(self, token: str) -> tuple[_Node, ...]:
        """Trie nodes a phrase starting with ``token`` leads to; cached, as texts reuse words."""
        root = self.root
        edges = [root.words[w] for w in (token, *self.digit_words.get(token, ())) if w in root.words]
        edges += [root.stems[token[:n]] for n in root.stem_lengths if token[:n] in root.stems]
        return tuple(edges)

    def _canonical(self, token: str) -> str:
        """The vocabulary word a texted token stands for: "stifff" → "stiff", "breathng" → "breathing"."""
        # A word a stem already covers ("tiembla" ← "tiembl*") is left alone: fuzzy matching
        # could only turn it into a different word.
        if token in self.vocabulary or token in self.ignore or not token.isalpha() or self._has_stem(token):
            return token
        doubles = _REPEATS.sub(r"\1\1", token)
        # Squeezing every double ("bluee" → "blue") only for longer words: "soon" is not "son".
        squeezed = _DOUBLES.sub(r"\1", token) if len(token) >= 5 else token
        for variant in (doubles, _REPEATS.sub(r"\1", token), squeezed):
            if variant in self.vocabulary:
                return variant
        token = doubles
        # Fuzzy only for long words: short ones ("shots"/"shakes", "fits"/"fist") collide too easily.
        if len(token) < self.settings.fuzzy_min_length or token in self.ignore:
            return token
        targets = [w for w in self.fuzzy_targets.get(token[0], ()) if abs(len(w) - len(token)) <= 2]
        cutoff = self.settings.fuzzy_min_ratio
        best = process.extractOne(token, targets, scorer=fuzz.ratio, score_cutoff=cutoff)
        return best[0] if best else token

    def _respelled(self, token: str) -> str:
        """A Spanish word spelled by ear read as the rule word it sounds like: "bomito" → "vomito".

        Only for a word no phrase knows, and only one swap at a time, so a real word never moves.
        """
        if len(token) < 3 or not token.isalpha() or token in self.vocabulary or self._has_stem(token):
            return token
        for old, new in self.swaps:
            if not old:
                variants = [new + token]
            else:
                at = [i for i in range(len(token)) if token.startswith(old, i)]
                variants = [token[:i] + new + token[i + len(old) :] for i in at]
            for variant in variants:
                if len(variant) >= 4 and (variant in self.vocabulary or self._has_stem(variant)):
                    return variant
        return token

    def _has_stem(self, token: str) -> bool:
        return any(token[:n] in self.all_stems for n in self.all_stem_lengths if n <= len(token))

    def tokens(self, text: str, lang: str | None = None) -> list[str]:
        """Canonical tokens, texting shorthand spelled out ("bby" → "baby"); with ``lang``, emoji
        of the language's emoji table read as words, and Spanish spelled by ear respelled."""
        raw = tokenise(text, self.emoji.get(lang) if lang else None)
        if self.shorthand:
            raw = [w for t in raw for w in self.shorthand.get(t, (t,))]
        out = [self.canonical(t) for t in raw]
        return self.spanish(out) if lang == "es" else out

    def spanish(self, tokens: list[str]) -> list[str]:
        """Canonical tokens read as Spanish: words spelled by ear respelled ("bomito" → "vomito")."""
        return [self.respelled(t) for t in tokens] if self.swaps else tokens

    def has_emoji_words(self, text: str) -> bool:
        """Whether ``text`` holds an emoji that some language's table reads as a word."""
        if text.isascii():
            return False
        chars = _EMOJI_STYLE.sub("", normalise(text))
        return any(key in chars for table in self.emoji.values() for key in table)

    def scan(self, tokens: Sequence[str]) -> list[Match]:
        """Every phrase occurrence, minus excluded look-alikes, with negation marked."""
        found: list[Match] = []
        for i, tok in enumerate(tokens):
            for child in self.first_edges(tok):
                self._walk(child, tokens, i + 1, i, found)
        found = _drop_excluded(found)
        self._mark_negations(tokens, found)
        return found

    def _step(self, node: _Node, tokens: Sequence[str], pos: int, start: int, found: list[Match]) -> None:
        """Follow the edges of ``node`` that tokens[pos] matches (the word itself, or a stem of it)."""
        tok = tokens[pos]
        for word in (tok, *self.digit_words.get(tok, ())):
            child = node.words.get(word)
            if child is not None:
                self._walk(child, tokens, pos + 1, start, found)
        for length in node.stem_lengths:
            if length > len(tok):
                break
            child = node.stems.get(tok[:length])
            if child is not None:
                self._walk(child, tokens, pos + 1, start, found)

    def _walk(self, node: _Node, tokens: Sequence[str], pos: int, start: int, found: list[Match]) -> None:
        found.extend(Match(owner, start, pos) for owner in node.owners)
        if node.gap is not None:
            for p in range(pos, min(pos + self.settings.gap_max + 1, len(tokens))):
                self._step(node.gap, tokens, p, start, found)
                # A gap never crosses a sentence end, a "but", or a negation: "threw up (not green)".
                if tokens[p] in self.gap_stops:
                    break
        if pos < len(tokens):
            self._step(node, tokens, pos, start, found)

    def _mark_negations(self, tokens: Sequence[str], found: list[Match]) -> None:
        """A cue ("no", "isnt", "sin") negates phrases within a few words, up to a clause break.

        After a negated phrase the scope goes on only through "or"/"ni" ("no fever or
        vomiting"), so "no fever hes limp" still counts the limpness. A cue inside a phrase
        ("not responding") or a pseudo-negation ("not sure if") negates nothing.
        """
        # Context cues and their words ("what does ... look like", "him") are not findings:
        # negation neither reads nor stops at them.
        found = [m for m in found if not m.owner.startswith(("ctx:", "cue:"))]
        covered = {p for m in found for p in range(m.start, m.end)}
        starts: dict[int, list[Match]] = defaultdict(list)
        for m in found:
            starts[m.start].append(m)
        active, budget, hold_until = False, 0, -1
        for i, tok in enumerate(tokens):
            if i == hold_until:
                hold_until = -1
                if tok in self.continuers:
                    budget = self.settings.negation_window
                    continue
                active = False
            if i in starts:
                for m in starts[i]:
                    m.negated = active and m.owner != "pseudo"
                if active:
                    hold_until = max(hold_until, *(m.end for m in starts[i]))
                continue
            if hold_until > i:
                continue
            if tok in self.breaks:
                active = False
            elif tok in self.cues and i not in covered:
                active, budget = True, self.settings.negation_window
            elif active:
                budget -= 1
                active = budget >= 0


def expand(phrase: str, terms: dict[str, Sequence[str]], depth: int = 0) -> list[tuple[str, ...]]:
    """Token patterns of a phrase, with each ``@term`` replaced by every phrase of that term."""
    slots: list[list[tuple[str, ...]]] = []
    for tok in normalise(phrase).split():
        if tok.startswith("@") and depth < 3:
            slots.append([p for sub in terms.get(tok[1:], ()) for p in expand(sub, terms, depth + 1)])
        else:
            slots.append([(tok,)])
    return [tuple(t for part in combo for t in part) for combo in product(*slots)]


def _drop_excluded(found: list[Match]) -> list[Match]:
    """Drop matches overlapped by their owner's exclusion ("blue blanket", "shaking the bottle")."""
    excluded: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for m in found:
        if m.owner.startswith("x:"):
            excluded[m.owner[2:]].append((m.start, m.end))
    if not excluded:
        return found
    return [
        m
        for m in found
        if not m.owner.startswith("x:")
        and not any(s < m.end and m.start < e for s, e in excluded.get(m.owner, ()))
    ]
