"""Hypothesis strategies shared by the fuzz tests: odd text, JSON values and the ways JSON text goes
wrong (repeated keys, deep nesting, NaN, bad UTF-8, sizes), plus the count of cases tried."""

from __future__ import annotations

import json
import os
from collections import Counter

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# DANCENOW_FUZZ_EXAMPLES=2000 for a longer hunt; the default keeps the suite quick
EXAMPLES = int(os.environ.get("DANCENOW_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
CASES: Counter[str] = Counter()  # cases tried per endpoint or file type (printed by the tests)

# every code point: lone surrogates, controls, private use, unassigned, right-to-left marks
ODD_CHAR = st.characters(exclude_categories=())
ODD_TEXT = st.text(ODD_CHAR, max_size=40)
NAMES = ["sdp", "type", "token", "id", "target", "name", "resolution", "artifacts", "frames", "__proto__", ""]
KEYS = st.sampled_from(NAMES) | ODD_TEXT
NUMBERS = (st.integers() | st.integers(min_value=-(10**40), max_value=10**40)
           | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0, -1, 2**31, 2**63, 1e308, -0.0]))
LEAVES = st.none() | st.booleans() | NUMBERS | ODD_TEXT
JSON = st.recursive(LEAVES, lambda c: st.lists(c, max_size=5) | st.dictionaries(KEYS, c, max_size=5), max_leaves=25)


def dumps(value, ascii_only: bool = True) -> bytes:
    """JSON text as bytes; with `ascii_only=False` lone surrogates become invalid UTF-8."""
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=True).encode("utf-8", "surrogatepass")


@st.composite
def repeated_keys(draw, values=JSON) -> bytes:
    """An object with the same key more than once ({"sdp": 1, "sdp": "v=0"}): parsers differ on it."""
    pairs = draw(st.lists(st.tuples(st.sampled_from(NAMES[:5]), values), min_size=2, max_size=6))
    return b"{" + b",".join(dumps(k) + b":" + dumps(v) for k, v in pairs) + b"}"


@st.composite
def deep(draw) -> bytes:
    """Nesting far beyond any real document (json's recursion limit, our own walkers)."""
    n = draw(st.integers(1, 30_000))
    kind = draw(st.sampled_from(["list", "object", "keyed"]))
    if kind == "list":
        return b"[" * n + b"]" * n
    if kind == "object":
        return b'{"a":' * n + b"1" + b"}" * n
    return b'{"sdp":' + b"[" * n + b"]" * n + b"}"


def json_texts(values=JSON) -> st.SearchStrategy[bytes]:
    """The bytes a client might send as JSON: valid, repeated keys, deep, truncated, or not JSON at all."""
    return st.one_of(
        st.builds(dumps, values, st.booleans()),
        repeated_keys(values),
        deep(),
        st.builds(lambda v, cut: dumps(v)[:cut], values, st.integers(0, 50)),
        st.binary(max_size=300),
        st.sampled_from([b"", b"null", b"NaN", b"-Infinity", b"1e999999", b"9" * 5000, b'"\\ud800"', b"\xef\xbb\xbf{}",
                         b'{"a": 1}' + b"\x00", b"{\"sdp\": \"v=0\\u0000\"}"]),
    )


def mutated(doc: dict) -> st.SearchStrategy:
    """`doc` with fields dropped, retyped, replaced by odd values or joined by unknown ones, at any depth."""

    @st.composite
    def strategy(draw):
        return _mutate(draw, json.loads(json.dumps(doc)), 0)

    return strategy()


def _mutate(draw, value, depth: int):
    if isinstance(value, dict) and value and depth < 4:
        key = draw(st.sampled_from(sorted(value)))
        nested = isinstance(value[key], (dict, list)) and value[key]
        action = draw(st.sampled_from(["drop", "replace", "add"] + ["recurse"] * (6 if nested else 1)))
        if action == "drop":
            del value[key]
        elif action == "replace":
            value[key] = draw(JSON)
        elif action == "add":
            value[draw(KEYS)] = draw(JSON)
        else:
            value[key] = _mutate(draw, value[key], depth + 1)
        return value
    if isinstance(value, list) and value and depth < 4:
        i = draw(st.integers(0, len(value) - 1))
        value[i] = _mutate(draw, value[i], depth + 1)
        return value
    return draw(JSON)
