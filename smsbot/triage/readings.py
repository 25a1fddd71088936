"""Numbers in a parent's text: temperatures, the baby's age, and counts ("2 wet diapers").

Parents rarely write units, so a bare number is read by its range (35.0–42.9 is °C, 93–108
is °F), while a following unit that is clearly something else ("4oz", "3 hrs", "34 weeks")
rules it out. Bare whole numbers count as temperatures only when the text is about
temperature, so "hes 100 percent fine" or "100 ml" is not a fever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from smsbot.triage.matcher import number
from smsbot.triage.model import Language

CELSIUS = (35.0, 43.0)
FAHRENHEIT = (93.0, 109.0)


def _to_f(celsius: float) -> float:
    # Rounded to a tenth, as thermometers show °F, so each °C threshold of the brief lands on its
    # °F twin: 38.0 °C is 100.4 °F (not 100.39999) and 37.2 °C is 99.0 °F (not 98.96).
    return round(celsius * 9 / 5 + 32, 1)


def spoken_numbers(tokens: Sequence[str], lang: Language) -> list[tuple[str, int]]:
    """``tokens`` with a number written out in words joined into one number token, each with
    the position of its first word in ``tokens`` (so a reading can be placed in its sentence).

    "one hundred point eight" → "100.8", "treinta y ocho punto cinco" → "38.5",
    "a hundred and one" → "101", "one oh one point two" → "101.2" (read digit by digit),
    "38 punto 2" → "38.2". A lone number word stays as it is.
    """
    words = lang.numbers
    out: list[tuple[str, int]] = []
    i = 0
    while i < len(tokens):
        j, total = i, number(tokens[i])
        if total is not None:  # digits: only a spoken decimal may follow ("38 punto 2")
            j += 1
        else:
            total, values = 0, []
            while j < len(tokens):
                tok = tokens[j]
                value = words.get(tok)
                if value is None and values and tok in lang.zero_words:
                    value = 0  # "one oh one"
                following = tokens[j + 1] if j + 1 < len(tokens) else ""
                joins = tok in {"and", "y"} and total % 10 == 0 and words.get(following, 99) < 10
                if value is None and values and joins:
                    j += 1  # "treinta y ocho", "a hundred and one"
                    continue
                if value is None:
                    break
                total = (total or 1) * value if value == 100 else total + value
                values.append(value)
                j += 1
            if len(values) > 1 and all(v < 10 for v in values):
                total = int("".join(map(str, values)))  # digit by digit: "one oh one", "three eight"
        decimals = ""
        if j > i and j + 1 < len(tokens) and tokens[j] in lang.decimal_words:
            k = j + 1
            while k < len(tokens) and (words.get(tokens[k], 10) < 10 or tokens[k].isdigit()):
                decimals += str(words.get(tokens[k], tokens[k]))
                k += 1
            if decimals:
                j = k
        if j - i > 1:
            out.append((f"{total:g}" + (f".{decimals}" if decimals else ""), i))
            i = j
        else:
            out.append((tokens[i], i))
            i += 1
    return out


@dataclass(frozen=True)
class Reading:
    """A temperature in °F read at tokens[start:end] of the text."""

    value_f: float
    start: int
    end: int


def temperatures_f(tokens: Sequence[str], lang: Language) -> list[Reading]:
    """Every temperature reading in the text, converted to °F, with where it was written."""
    spoken = spoken_numbers(tokens, lang)
    positions = [at for _, at in spoken]
    tokens = [tok for tok, _ in spoken]
    about_temperature: bool | None = None  # only worked out when a bare whole number needs it
    out: list[Reading] = []
    for i, tok in enumerate(tokens):
        value = number(tok)
        if value is None:
            continue
        unit = tokens[i + 1] if i + 1 < len(tokens) else ""
        if unit in lang.degree_units:
            after = tokens[i + 2] if i + 2 < len(tokens) else ""
            unit = after if after in lang.celsius_units or after in lang.fahrenheit_units else "deg"
        if unit in lang.non_temperature_units:
            continue
        if unit in lang.celsius_units:
            scale = "C"
        elif unit in lang.fahrenheit_units:
            scale = "F"
        elif CELSIUS[0] <= value < CELSIUS[1]:
            scale = "C"
        elif FAHRENHEIT[0] <= value < FAHRENHEIT[1]:
            scale = "F"
        else:
            continue
        explicit = unit == "deg" or unit in lang.celsius_units or unit in lang.fahrenheit_units
        if not (explicit or "." in tok or "," in tok):
            if about_temperature is None:
                about_temperature = not lang.temperature_context.isdisjoint(tokens)
            if not about_temperature:
                continue
        value_f = _to_f(value) if scale == "C" else value
        if (scale == "C" and 30 <= value < 45) or (scale == "F" and 86 <= value < 113):
            end = positions[i + 1] if i + 1 < len(positions) else positions[i] + 1
            out.append(Reading(value_f, positions[i], end))
    return out


def ages_days(tokens: Sequence[str], lang: Language) -> list[int]:
    """Baby ages written in the text ("7 weeks", "2mo", "de 2 meses"), not gestation or durations."""
    out: list[int] = []
    for i, tok in enumerate(tokens[:-1]):
        days_per_unit = lang.age_units.get(tokens[i + 1])
        if not days_per_unit:
            continue
        value = number(tok) or lang.numbers.get(tok)
        if not value or value > 60:
            continue
        before = tokens[max(0, i - 2) : i]
        after = tokens[i + 2 : i + 3]
        if any(t in lang.not_age_cues for t in (*before, *after)):
            continue
        out.append(int(value * days_per_unit))
    return out


def number_before(tokens: Sequence[str], start: int, lang: Language) -> float | None:
    """The number written just before position ``start`` ("only 2 wet", "como 7 panales")."""
    for tok in reversed(tokens[max(0, start - 2) : start]):
        value = number(tok)
        if value is None:
            value = lang.numbers.get(tok)
        if value is not None:
            return float(value)
    return None
