"""Throughput of ``assess()`` on a few thousand realistic parent texts, single process.

Run: ``python benchmarks/bench_triage.py``. Times single messages through the rules and the
learned second opinion (what a parent's text gets), then the rules alone. Also times the same
messages against the rule set multiplied ×10 with synthetic rules, to show the cost grows far
slower than the number of rules: phrases sit in an index keyed by their first word, so a
message only looks at phrases that can start at its words.
"""

from __future__ import annotations

import random
import time
from dataclasses import replace
from pathlib import Path

import yaml

from smsbot.triage import RuleSet, assess, load_rules
from smsbot.triage.classifier import Classifier, shipped_classifier
from smsbot.triage.engine import engine_for

DATA = Path(__file__).resolve().parent.parent / "corpus"
PREFIXES = ["", "", "hi ", "update: ", "ok so ", "sorry to bother, ", "hola, ", "grandma here. "]
SUFFIXES = ["", "", " thx", " 😭", " pls help", " is that normal?", " gracias", "!!"]


def messages(count: int, seed: int = 7) -> list[str]:
    """Dev and extra cases with texting variations (case, greetings, emoji, typos)."""
    base = [
        c["text"]
        for name in ("dev_cases.yaml", "extra_cases.yaml")
        for c in yaml.safe_load((DATA / name).read_text(encoding="utf-8"))
    ]
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        text = rng.choice(PREFIXES) + rng.choice(base) + rng.choice(SUFFIXES)
        if rng.random() < 0.2:
            text = text.upper()
        if rng.random() < 0.3:  # a doubled letter, as thumbs do
            i = rng.randrange(len(text))
            text = text[:i] + text[i] + text[i:]
        out.append(text)
    return out


def multiplied(ruleset: RuleSet, factor: int, share_first_word: bool) -> RuleSet:
    """The rule set plus (factor - 1) synthetic copies of every rule and of its findings' terms.

    With ``share_first_word`` each synthetic phrase starts with the real phrase's first word,
    the worst case for a trie keyed on words (every matching word has ten times the branches).
    """
    extra, terms = [], dict(ruleset.terms)
    for n in range(1, factor):
        for rule in ruleset.rules:
            findings = []
            for tid in rule.findings:
                phrases = []
                for phrase in ruleset.terms[tid].phrases:
                    words = phrase.split()
                    head = words[0] if share_first_word else f"zq{n}{words[0].lstrip('@')}"
                    # Always one made-up word after the head, so copies never fire: this times the lookup.
                    tail = [f"zq{n}{w.strip('@*.')}" for w in words[1:]] or [f"zq{n}"]
                    phrases.append(" ".join([head, *tail]))
                terms[f"zq{n}_{tid}"] = replace(
                    ruleset.terms[tid], id=f"zq{n}_{tid}", phrases=tuple(phrases), exclude=()
                )
                findings.append(f"zq{n}_{tid}")
            # Copies trigger on findings only: a copied temperature rule would simply fire 10 times.
            copy = replace(rule, id=f"{rule.id}-x{n}", temperature_f=None, count=None)
            extra.append(replace(copy, findings=tuple(findings) or (f"zq{n}never",)))
            terms.setdefault(
                f"zq{n}never",
                replace(
                    next(iter(ruleset.terms.values())), id=f"zq{n}never", phrases=(f"zq{n}never",), exclude=()
                ),
            )
    return replace(ruleset, rules=ruleset.rules + tuple(extra), terms=terms)


def rate(
    texts: list[str], ruleset: RuleSet, classifier: Classifier | None = None, passes: int = 3
) -> tuple[float, float]:
    """(messages/s on the first pass with cold caches, best messages/s of the warm passes).

    Timed in CPU seconds of this process, so a busy shared machine does not skew the figure.
    """
    engine_for(ruleset)  # compile outside the timing: it happens once per process
    start = time.process_time()
    for text in texts:
        assess(text, rules=ruleset, classifier=classifier)
    cold = len(texts) / (time.process_time() - start)
    best = 0.0
    for _ in range(passes):
        start = time.process_time()
        for text in texts:
            assess(text, rules=ruleset, classifier=classifier)
        best = max(best, len(texts) / (time.process_time() - start))
    return cold, best


def main() -> None:
    texts = messages(5000)
    ruleset = load_rules()
    print(f"{len(texts)} messages, {len(ruleset.rules)} rules")
    cold, warm = rate(texts, ruleset, shipped_classifier())
    print(f"  rules + classifier, single messages: {warm:>9,.0f} msg/s (first pass, cold: {cold:,.0f})")
    cold, warm = rate(texts, ruleset)
    print(f"  rules x1: {warm:>9,.0f} msg/s (first pass, cold caches: {cold:,.0f})")
    for share, label in ((False, "new words"), (True, "same first words")):
        big = multiplied(ruleset, 10, share)
        cold10, warm10 = rate(texts, big)
        print(
            f"  rules x10 ({label}, {len(big.rules)} rules): {warm10:>9,.0f} msg/s "
            f"(cold {cold10:,.0f}); cost x{warm / warm10:.2f} for x10 rules"
        )


if __name__ == "__main__":
    main()
