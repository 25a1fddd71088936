"""What the replies to every corpus text cost in SMS segments: ``python -m devtools.segments [CORPUS_DIR]``.

Every text of ``corpus/**/*.yaml`` goes through the engine and gets the reply a first text
from a family would get (emergency number 911, no baby's name). Prints how many replies
take 1, 2, 3... segments, overall and per level, how many are GSM-7, and how many emergency
replies name the number within their first 160 characters. Texts are never printed (the
frozen slice is scores only).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from smsbot.messaging.segments import count_segments, is_gsm7
from smsbot.triage import assess
from smsbot.triage.corpus import load_corpus
from smsbot.triage.replies import render_reply

NUMBER = "911"


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else None
    by_level: dict[str, Counter[int]] = {}
    overall: Counter[int] = Counter()
    gsm7 = emergencies = number_first = 0
    for batch in load_corpus(root):
        for case in batch.cases:
            decision = assess(case.text)
            reply = render_reply(decision, emergency_number=NUMBER)
            segments = count_segments(reply)
            overall[segments] += 1
            by_level.setdefault(decision.level, Counter())[segments] += 1
            gsm7 += is_gsm7(reply)
            if decision.level == "emergency":
                emergencies += 1
                number_first += NUMBER in reply[:160]
    total = sum(overall.values())
    print(f"{total} corpus texts, replies by SMS segments:")
    for name, counter in [("all", overall), *sorted(by_level.items())]:
        counts = "  ".join(
            f"{s} seg: {n} ({n / sum(counter.values()):.1%})" for s, n in sorted(counter.items())
        )
        print(f"  {name:10} {counts}")
    within = sum(n for s, n in overall.items() if s <= 2)
    print(f"2 segments or fewer: {within / total:.1%}; GSM-7: {gsm7 / total:.1%}")
    print(f"emergency replies naming {NUMBER} within 160 characters: {number_first} of {emergencies}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
