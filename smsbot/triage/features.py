"""What the learned second opinion sees of a text: hashed character and word n-grams.

Character n-grams (2–5, inside words) survive typos, voice-to-text and Spanish spelled by
ear; word uni- and bigrams keep short phrases ("not breathing"). Both are hashed into a fixed
number of buckets, so the shipped model needs no vocabulary and reading a text costs a few
numpy operations (about 20 µs) instead of a Python loop over every n-gram.

Changing anything here changes what every bucket means: retrain (``smsbot triage train``).
"""

from __future__ import annotations

import re
import unicodedata
import zlib

import numpy as np

HASH_BITS = 17  # buckets per block: ~30k distinct n-grams in the corpus, few collisions
CHAR_NGRAMS = (2, 5)  # the code below starts at 2
BLOCKS = 2  # character n-grams, then word n-grams, each in its own 2**HASH_BITS buckets
DIMENSIONS = BLOCKS << HASH_BITS


def _accent_folding() -> dict[int, str]:
    """Latin letters with accents → their base letter ("á" → "a", "ñ" → "n"); emoji stay."""
    table = {}
    for code in range(0xC0, 0x250):
        letter = chr(code)
        base = "".join(c for c in unicodedata.normalize("NFKD", letter) if not unicodedata.combining(c))
        if base and base != letter:
            table[code] = base
    return table


_FOLD = _accent_folding()
# Runs of two or more word characters (a greedy run is already a whole word: no \b needed).
_WORD = re.compile(r"\w\w+")
_ASCII_WORD = re.compile(rb"\w\w+")  # the same on ASCII bytes, which crc32 reads directly
_SPACE = 32
# One odd 64-bit multiplier per position in an n-gram, so "ab" and "ba" hash apart.
_POSITION = np.array(
    [0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53],
    dtype=np.uint64,
)
_PAIR = np.uint64(0x9FB21C651E98DF25)  # a word pair's hash: first word's hash * _PAIR + second's
_MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: the top bits of h * _MIX pick the bucket
_SHIFT = np.uint64(64 - HASH_BITS)


def normalise(text: str) -> str:
    """Lower case, accents folded, whitespace collapsed, one space around every word."""
    return " " + " ".join(text.lower().translate(_FOLD).split()) + " "


def _char_hashes(padded: str) -> np.ndarray:
    """64-bit hashes of the n-grams of ``padded`` that do not span a space (like ``char_wb``)."""
    chars = np.frombuffer(padded.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    length = len(chars)  # at least 2: the padding
    space = chars == _SPACE
    hashes = chars[:-1] * _POSITION[0] + chars[1:] * _POSITION[1]
    parts = [hashes]
    spans_space: np.ndarray | None = None
    for n in range(3, CHAR_NGRAMS[1] + 1):
        if length < n:
            break
        hashes = hashes[:-1] + chars[n - 1 :] * _POSITION[n - 1]
        # A space inside the n-gram (not at its ends) means it spans two words.
        inner = space[n - 2 : length - 1]
        spans_space = inner if spans_space is None else spans_space[:-1] | inner
        parts.append(hashes[~spans_space])
    return np.concatenate(parts)


def _word_hashes(padded: str) -> np.ndarray:
    """Hashes of every word of two or more letters, then of every pair of neighbouring words."""
    if padded.isascii():  # most texts: no per-word encoding
        single = np.array(list(map(zlib.crc32, _ASCII_WORD.findall(padded.encode()))), dtype=np.uint64)
    else:
        words = _WORD.findall(padded)
        single = np.fromiter(map(zlib.crc32, map(str.encode, words)), np.uint64, len(words))
    return np.concatenate((single, single[:-1] * _PAIR + single[1:]))


def hashed_ngrams(text: str) -> tuple[np.ndarray, int]:
    """Bucket numbers of every n-gram of ``text`` (repeats kept), and where word n-grams start.

    Character n-grams come first; word n-grams follow in buckets offset by 2**HASH_BITS, since
    each block is weighted and normalised on its own.
    """
    padded = normalise(text)
    chars = _char_hashes(padded)
    buckets = ((np.concatenate((chars, _word_hashes(padded))) * _MIX) >> _SHIFT).astype(np.intp)
    buckets[len(chars) :] += 1 << HASH_BITS
    return buckets, len(chars)
