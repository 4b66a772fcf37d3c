"""Token filters: which batches cannot hold a grep's needle, decided without reading them.

A compacted batch carries a filter of the tokens of its lines (``collector.storage.tokens``
stores them). A grep whose every match must contain some whole token skips each batch whose
filter says that token is absent. A filter can only skip: a token it holds may be a false
positive (the batch is read and searched as before), a token it lacks is certainly absent, so
a grep with filters returns exactly what it returns without them.

Tokens are maximal runs of ``[0-9A-Za-z_]`` and of every byte >= 0x80 (so a UTF-8 character,
and invalid UTF-8 too, is part of a token, never a separator), indexed case-folded: ASCII
lower-cased, and the two non-ASCII characters that RE2's case folding maps onto ASCII letters
(U+017F LONG S to ``s``, U+212A KELVIN SIGN to ``k``; found by trying every code point against
every ASCII token character) replaced by those letters. One set then serves case-sensitive and
``-i`` greps alike.

Which tokens a grep needs (``required_tokens``): for a literal (``-F``, or each literal a regex
must contain: ``match.required_literals``), the tokens *strictly inside* it, with a separator
of the literal on both sides. Any match of the literal puts such a token between two
separators of the line, a whole token there. The tokens at the literal's ends may be parts of
longer ones (``-F 'id=9f3c'`` matches ``rid=9f3c0``) and are not used. Under ``-i`` only ASCII
tokens are used (a non-ASCII one has case variants of other lengths).

The filter is a blocked Bloom filter (Putze, Sanders, Singler 2007; the layout of RocksDB's
and Parquet's "split block" filters): a token's hash picks one 64-byte block and sets
``PROBES`` bits in it, so a lookup touches one cache line per token. Why not an xor
or binary-fuse filter (smaller for the same false-positive rate): those are built over the
whole key set at once with peeling, which in Python costs several passes over the keys with
random access each; a Bloom filter is built in one pass. At ``BITS_PER_TOKEN`` = 8 and
``PROBES`` = 6 the measured false-positive rate is 2.2-2.5 % (1,000 to 50,000 tokens), and a
filter over a batch with one unique id per line is ~1 byte per line (bench/cold.py prints the
filters' share of the stored bytes).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Final

from collector.filters.match import required_literals

BLOCK_BYTES: Final = 64
_BLOCK_BITS: Final = BLOCK_BYTES * 8
PROBES: Final = 6
BITS_PER_TOKEN: Final = 8

_TOKEN: Final = re.compile(rb"[0-9A-Za-z_\x80-\xff]+")
# RE2's case folding maps these onto ASCII letters (LONG S onto s, KELVIN SIGN onto k).
_FOLDS: Final = ((b"\xc5\xbf", b"s"), (b"\xe2\x84\xaa", b"k"))


def fold(data: bytes) -> bytes:
    """``data`` as tokens are indexed: ASCII lower-cased, LONG S and KELVIN SIGN folded."""
    data = data.lower()
    for src, dst in _FOLDS:
        if src in data:
            data = data.replace(src, dst)
    return data


def line_tokens(blob: bytes) -> set[bytes]:
    """The distinct folded tokens of a batch's lines blob."""
    return set(_TOKEN.findall(fold(blob)))


def literal_tokens(literal: bytes, *, ignore_case: bool) -> list[bytes]:
    """The folded tokens strictly inside ``literal``: whole tokens of every line it matches."""
    found = []
    for m in _TOKEN.finditer(literal):
        if m.start() == 0 or m.end() == len(literal):
            continue  # an edge token: may be part of a longer token of the line
        token = m.group()
        if ignore_case and not token.isascii():
            continue
        found.append(fold(token))
    return found


def required_tokens(pattern: str, *, fixed: bool, ignore_case: bool, invert: bool) -> list[bytes]:
    """Folded tokens that every line matching the grep holds whole (empty: filters cannot
    help, e.g. an empty or inverted pattern)."""
    if not pattern or invert:
        return []
    encoded = pattern.encode("utf-8", "surrogatepass")
    literals = [encoded] if fixed else required_literals(pattern)
    tokens: list[bytes] = []
    for literal in literals:
        for token in literal_tokens(literal, ignore_case=ignore_case):
            if token not in tokens:
                tokens.append(token)
    return tokens


def _hash(token: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(token, digest_size=8).digest(), "little")


def _probes(h: int, blocks: int) -> tuple[int, list[int]]:
    """The block ``h`` picks and the bit positions it sets there (double hashing)."""
    block = ((h >> 32) * blocks) >> 32
    h1 = h & 0xFFFFFFFF
    h2 = (h >> 23) | 1
    return block, [(h1 + i * h2) & (_BLOCK_BITS - 1) for i in range(PROBES)]


def blocks_for(tokens: int) -> int:
    """Blocks of a filter over ``tokens`` distinct tokens."""
    return max(1, -(-tokens * BITS_PER_TOKEN // _BLOCK_BITS))


def build(tokens: Iterable[bytes], count: int) -> bytes:
    """The filter's bytes over ``tokens`` (``count`` of them, distinct)."""
    blocks = blocks_for(count)
    bits = bytearray(blocks * BLOCK_BYTES)
    for token in tokens:
        block, probes = _probes(_hash(token), blocks)
        base = block * BLOCK_BYTES
        for p in probes:
            bits[base + (p >> 3)] |= 1 << (p & 7)
    return bytes(bits)


def may_contain(filter_bytes: bytes, tokens: Iterable[bytes]) -> bool:
    """Whether a batch with this filter may hold every one of ``tokens``."""
    blocks = len(filter_bytes) // BLOCK_BYTES
    for token in tokens:
        block, probes = _probes(_hash(token), blocks)
        base = block * BLOCK_BYTES
        if not all(filter_bytes[base + (p >> 3)] & (1 << (p & 7)) for p in probes):
            return False
    return True
