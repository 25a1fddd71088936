"""Compliance keywords (STOP / START / HELP), plain-word opt-outs and fixed service replies
from ``rules/``.

A keyword counts only when it is the whole message, so "please stop the shaking" stays
a symptom report. A plain-word opt-out ("stop texting me", "ya no me manden mensajes") is
a phrase about the messages found anywhere in a text; a text that only talks about stopping
the messages ("how do I stop these?") is told how to.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, field_validator

from smsbot.messaging.segments import count_segments
from smsbot.rulefiles import (
    RULE_FILE,
    RuleFileError,
    Text,
    Texts,
    YamlLines,
    parse,
    per_language,
    read_rule_file,
)
from smsbot.vocabulary import DEFAULT_LANG, LANGS, LONGEST_NUMBER, MAX_SEGMENTS

FILENAME = "keywords.yaml"
ACTIONS = ("stop", "start", "help")
HOW_TO_STOP = "how_to_stop"
# Phrase lists of the plain-word opt-outs, each {en: [...], es: [...]}.
OPT_OUT_LISTS = ("phrases", "not_after", "changes", "about_messages", "stop_words", "message_words")
NOT_AFTER_REACH = 5  # words before a phrase that a negation or a question is looked for in
NEAR = 4  # a stop word this many words or fewer from a word for the messages talks about them
# What each example list of ``opt_out.examples`` must be read as (None: neither).
EXAMPLE_READINGS = {"stop": "stop", "how_to_stop": HOW_TO_STOP, "neither": None}
_WORD = re.compile(r"[a-z0-9]+|[.,;:!?()]")
_APOSTROPHE = re.compile(r"(?<=[a-z])['’`´](?=[a-z])")
Words = tuple[str, ...]


def squash(text: str) -> str:
    """Upper-case letters and digits only, accents removed: 'Opt-out!' → 'OPTOUT'."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if ch.isalnum()).upper()


def words(text: str) -> Words:
    """Lower-case words, accents and in-word apostrophes removed ("don't" → "dont"), with
    punctuation kept as its own token: it ends a phrase and a negation's reach."""
    decomposed = unicodedata.normalize("NFKD", _APOSTROPHE.sub("", text.lower()))
    return tuple(_WORD.findall("".join(ch for ch in decomposed if not unicodedata.combining(ch))))


@dataclass(frozen=True)
class KeywordMatch:
    action: str  # stop | start | help; how_to_stop for a text that only talks about stopping
    lang: str
    whole: bool = True  # the whole message is the keyword; False: a plain-word request in a text


@dataclass(frozen=True)
class PhraseIndex:
    """Word phrases looked up by their first word: one dictionary probe per word of a text."""

    by_first: dict[str, tuple[tuple[Words, str], ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, phrases: Iterable[tuple[Words, str]]) -> PhraseIndex:
        by_first: dict[str, list[tuple[Words, str]]] = {}
        for phrase, lang in phrases:
            by_first.setdefault(phrase[0], []).append((phrase, lang))
        return cls({first: tuple(found) for first, found in by_first.items()})

    def find(self, tokens: Words) -> list[tuple[int, Words, str]]:
        """Every (position, phrase, language) found in ``tokens``."""
        return [
            (i, phrase, lang)
            for i, token in enumerate(tokens)
            for phrase, lang in self.by_first.get(token, ())
            if tokens[i : i + len(phrase)] == phrase
        ]


@dataclass(frozen=True)
class Keywords:
    by_word: dict[str, KeywordMatch]
    replies: dict[str, dict[str, str]]
    acks: dict[str, str] = field(default_factory=dict)  # squashed acknowledgement → language
    opt_out_phrases: PhraseIndex = field(default_factory=PhraseIndex)
    not_after: PhraseIndex = field(default_factory=PhraseIndex)
    changes: PhraseIndex = field(default_factory=PhraseIndex)
    about_messages: PhraseIndex = field(default_factory=PhraseIndex)
    stop_words: PhraseIndex = field(default_factory=PhraseIndex)
    message_words: PhraseIndex = field(default_factory=PhraseIndex)

    def match(self, text: str) -> KeywordMatch | None:
        """The action when the whole message is a keyword, else None."""
        return self.by_word.get(squash(text)) if len(text) <= 40 else None

    def acknowledgement(self, text: str) -> str | None:
        """The language of a whole message that only acknowledges ("Thanks!", "ok 👍"), else None."""
        return self.acks.get(squash(text)) if len(text) <= 40 else None

    def plain_opt_out(self, text: str) -> KeywordMatch | None:
        """A request to stop the messages in plain words, anywhere in ``text``.

        ``stop`` for a clear request; ``how_to_stop`` when the text talks about stopping the
        messages without clearly asking (a how-question, a negated request such as "please
        don't stop texting me", or one that only wants them changed: "stop texting me at
        night"); None when it does not talk about the messages at all ("please stop the
        shaking").
        """
        tokens = words(text)
        found = self.opt_out_phrases.find(tokens)
        clear = [lang for start, _, lang in found if not self._qualified(tokens, start)]
        if clear and not self.changes.find(tokens):
            return KeywordMatch("stop", clear[0], whole=False)
        talk = found or self.about_messages.find(tokens)
        talk = talk or self._near(tokens, self.stop_words.find(tokens), self.message_words.find(tokens))
        return KeywordMatch(HOW_TO_STOP, talk[0][2], whole=False) if talk else None

    @staticmethod
    def _near(
        tokens: Words, stops: list[tuple[int, Words, str]], subjects: list[tuple[int, Words, str]]
    ) -> list[tuple[int, Words, str]]:
        """The stop words within NEAR words of a word for the messages, in the same clause."""
        return [
            stop
            for stop in stops
            for subject in subjects
            if abs(stop[0] - subject[0]) <= NEAR
            and all(t[0].isalnum() for t in tokens[min(stop[0], subject[0]) : max(stop[0], subject[0])])
        ]

    def opting_out(self, text: str) -> bool:
        """Whether ``text`` is a STOP, as a keyword or in plain words."""
        found = self.match(text.strip()) or self.plain_opt_out(text)
        return found is not None and found.action == "stop"

    def _qualified(self, tokens: Words, start: int) -> bool:
        """A negation or a how-question in the few words before ``start``, not across punctuation."""
        window: list[str] = []
        for token in reversed(tokens[max(start - NOT_AFTER_REACH, 0) : start]):
            if not token[0].isalnum():
                break
            window.insert(0, token)
        return bool(self.not_after.find(tuple(window)))

    def reply(self, name: str, lang: str, **values: str) -> str:
        texts = self.replies[name]
        return " ".join(texts.get(lang, texts[DEFAULT_LANG]).format(**{"reason": "", **values}).split())


class _Part(BaseModel):
    model_config = RULE_FILE


# Quote a bare YES or NO: YAML would read it as a boolean, which is refused here.
Listed = Annotated[list[Text], Field(min_length=1)]


WordLists = per_language("WordLists", Listed, "A non-empty list of words per language.")


class KeywordLists(_Part):
    """Whole-message keywords for each action."""

    stop: WordLists
    start: WordLists
    help: WordLists


# A whole message that only says thanks or OK, per language.
AckLists = per_language("AckLists", Listed, "Whole-message acknowledgements per language.")


def _words_only(phrase: str | int) -> str | int:
    found = words(str(phrase))
    if not found or not all(token[0].isalnum() for token in found):
        raise ValueError(f"{phrase!r} must be words only")
    return phrase


PhraseLists = per_language(
    "PhraseLists",
    Annotated[list[Annotated[Text, AfterValidator(_words_only)]], Field(min_length=1)],
    "Phrases of words matched anywhere in a text, per language.",
)


class OptOutExamples(_Part):
    """Texts and how each must be read (``rules check`` runs them)."""

    stop: list[str] = []
    how_to_stop: list[str] = []
    neither: list[str] = []


class OptOut(_Part):
    phrases: PhraseLists  # a clear request to stop the messages
    not_after: PhraseLists  # a negation or a how-question just before one: not clear
    changes: PhraseLists  # wanting the messages changed, not stopped ("at night")
    about_messages: PhraseLists  # talk about stopping the messages: told how to
    stop_words: PhraseLists
    message_words: PhraseLists
    examples: OptOutExamples


def _within_budget(text: str) -> str:
    """A reply fits the SMS budget with the longest emergency number a deployment may set
    (a ``{reason}`` is optional: the caller drops it when it would not fit)."""
    if (segments := count_segments(text.format(emergency_number=LONGEST_NUMBER, reason=""))) > MAX_SEGMENTS:
        raise ValueError(f"{segments} SMS segments, over {MAX_SEGMENTS}")
    return text


class Reply(Texts):
    """A fixed reply in each language, within the SMS budget."""

    @field_validator(*LANGS)
    @classmethod
    def _budget(cls, text: str) -> str:
        return _within_budget(text)


class Replies(_Part):
    stop: Reply
    start: Reply
    help: Reply
    media: Reply  # a picture with no words
    empty: Reply
    error: Reply  # processing failed: sorry, and the emergency number
    how_to_stop: Reply
    # Conversation (``smsbot.conversation.respond``): an acknowledgement, alone or after an
    # emergency or urgent reply; a check-in answer with no check-in open; a follow-up that
    # keeps the level of the report before it.
    ack: Reply
    ack_emergency: Reply
    ack_urgent: Reply
    no_checkin: Reply
    still_emergency: Reply
    still_urgent: Reply
    still_routine: Reply
    # Sensitive news (``smsbot.conversation.news``): a loss, a baby in hospital, a baby home again.
    news_loss: Reply
    news_hospital: Reply
    news_home: Reply


class KeywordsFile(_Part):
    kind: Literal["keywords"]
    keywords: KeywordLists
    acknowledgements: AckLists
    opt_out: OptOut
    replies: Replies


def check_file(path: Path, data: dict[str, Any]) -> list[RuleFileError]:
    """Every problem of a ``kind: keywords`` file: its schema, a word given two actions, then
    each plain-word opt-out example read as its list says."""
    parsed, problems = parse(path, data, KeywordsFile)
    if parsed is None:
        return problems
    if problems := _shared_words(path, parsed):
        return problems
    keywords = _build(parsed)
    lines = YamlLines(path)
    for name, expected in EXAMPLE_READINGS.items():
        for index, text in enumerate(getattr(parsed.opt_out.examples, name)):
            found = keywords.match(text.strip()) or keywords.plain_opt_out(text)
            got = found.action if found is not None else None
            if got != expected:
                problems.append(
                    RuleFileError(
                        path,
                        f"{text!r} is read as {got or 'neither'}",
                        field=f"opt_out.examples.{name}",
                        line=lines.at(("opt_out", "examples", name, index)),
                    )
                )
    return problems


def _shared_words(path: Path, parsed: KeywordsFile) -> list[RuleFileError]:
    """A keyword is one action's only: the same word under two would pick one silently."""
    lines = YamlLines(path)
    seen: dict[str, str] = {}
    problems = []
    for action in ACTIONS:
        for lang in LANGS:
            for index, word in enumerate(getattr(getattr(parsed.keywords, action), lang)):
                key = squash(str(word))
                if seen.setdefault(key, action) != action:
                    problems.append(
                        RuleFileError(
                            path,
                            f"{word!r} is also a {seen[key]}",
                            field=f"keywords.{action}.{lang}",
                            line=lines.at(("keywords", action, lang, index)),
                        )
                    )
    return problems


def _build(parsed: KeywordsFile) -> Keywords:
    by_word: dict[str, KeywordMatch] = {}
    for action in ACTIONS:
        for lang in LANGS:
            for word in getattr(getattr(parsed.keywords, action), lang):
                # The first language listing a shared word ("MENU") wins.
                by_word.setdefault(squash(str(word)), KeywordMatch(action, lang))
    opt_out = parsed.opt_out
    lists = {
        name: PhraseIndex.of(
            (words(str(phrase)), lang) for lang in LANGS for phrase in getattr(getattr(opt_out, name), lang)
        )
        for name in OPT_OUT_LISTS
    }
    acks: dict[str, str] = {}
    for lang in LANGS:
        for word in getattr(parsed.acknowledgements, lang):
            acks.setdefault(squash(str(word)), lang)
    return Keywords(
        by_word=by_word,
        replies=parsed.replies.model_dump(),
        acks=acks,
        opt_out_phrases=lists["phrases"],
        not_after=lists["not_after"],
        changes=lists["changes"],
        about_messages=lists["about_messages"],
        stop_words=lists["stop_words"],
        message_words=lists["message_words"],
    )


@lru_cache(maxsize=8)
def load_keywords(rules_dir: Path) -> Keywords:
    """Parse and check ``<rules_dir>/keywords.yaml`` once per directory; the first problem
    found is raised as a RuleFileError."""
    path = rules_dir / FILENAME
    parsed, problems = parse(path, read_rule_file(path), KeywordsFile)
    if parsed is None or (problems := _shared_words(path, parsed)):
        raise problems[0]
    return _build(parsed)
