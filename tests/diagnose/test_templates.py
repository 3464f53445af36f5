"""The streaming template miner: masking, clustering, merging, persistence, and the batch path."""

from __future__ import annotations

import doctest
import ipaddress
import pickle
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

import diagnose.templates as templates_module
from diagnose.templates import WILDCARD, TemplateMiner, mask, mask_line

ips = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
ports = st.integers(1, 65535)
numbers = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False).map(lambda x: f"{x:.3f}"),
    st.integers(0, 2**64 - 1).map(hex),
)
#: Plain constant words: lowercase letters, never a value word (true, null, Mon ...) or a unit.
words = st.text("abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=10).filter(
    lambda w: (
        w not in {"true", "false", "null", "bytes", "byte", "secs", "sec", "mins", "min", "hrs", "days"}
        and not re.fullmatch(templates_module.UNITS, w)
    )
)
ascii_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


def test_doctests_pass() -> None:
    # diagnose/ is not on pytest's doctest paths yet; run the module's examples here
    result = doctest.testmod(templates_module)
    assert result.attempted >= 8 and result.failed == 0


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("connect to 10.1.2.3:8080 failed", "connect to <*> failed"),
        ("took 250 ms", "took <*>"),
        ("sent 1190 bytes (1.16 KB) ok", "sent <*> ok"),
        ("open /var/lib/app/data.db", "open <*>"),
        ("GET https://example.com/a?b=c done", "GET <*> done"),
        ("req 3f2a9c1e-1b2c-4d5e-8f90-abcdefabcdef ok", "req <*> ok"),
        ("flags=0x1f, ready=true", "flags=<*>, ready=<*>"),
        ("at Mon Jun 20 03:40:59 2005 reboot", "at <*> reboot"),
        ("peer fe80::1ff:fecd:467f:1 up", "peer <*> up"),
        ("connection from 1.2.3.4 () at noon", "connection from <*> at noon"),
        ("all words here", "all words here"),
    ],
    ids=[
        "ip-port",
        "duration",
        "size-with-alternative",
        "path",
        "url",
        "uuid",
        "key-value",
        "date",
        "ipv6",
        "empty-value",
        "no-variables",
    ],
)
def test_generic_variables_are_masked(line: str, masked: str) -> None:
    assert mask_line(line) == masked


@given(ascii_text)
def test_masking_leaves_no_digit_and_is_idempotent(text: str) -> None:
    once = mask_line(text)
    assert not re.search(r"[0-9]", once)
    assert mask_line(once) == once
    assert mask(text) == once.split()


@given(ascii_text)
def test_batched_masking_equals_line_by_line(text: str) -> None:
    lines = [text, text.upper(), "", f"x {text} y"]
    assert templates_module._mask_lines(lines) == [mask_line(s) for s in lines]


def test_batches_holding_the_line_separator_still_mask_line_by_line() -> None:
    lines = ["a\x00b 12", "", "  spaced   out 7 ms  ", "x"]
    assert templates_module._mask_lines(lines) == [mask_line(s) for s in lines]
    assert templates_module._mask_lines([]) == []
    miner = TemplateMiner()
    assert miner.add_many(lines).tolist() == [miner.resolve(miner.add(s)) for s in lines]


@given(
    st.lists(
        st.tuples(ips, ports, numbers, st.sampled_from(["ms", "s", "KB", "MB"])), min_size=2, max_size=30
    )
)
def test_values_substituted_into_one_template_share_one_cluster(
    values: list[tuple[str, int, str, str]],
) -> None:
    miner = TemplateMiner()
    ids = {
        miner.add(f"Accepted connection from {ip}:{port} after {n} {unit} for user root")
        for ip, port, n, unit in values
    }
    assert len(ids) == 1
    assert miner.template(ids.pop()).count(WILDCARD) >= 1


@given(st.lists(words, min_size=3, max_size=8, unique=True), st.data())
def test_templates_differing_in_constant_words_split(base: list[str], data: st.DataObject) -> None:
    n = len(base)
    k = data.draw(st.integers(max(1, -(-n // 5)), n), label="words changed")  # at least a fifth
    positions = data.draw(st.lists(st.integers(0, n - 1), min_size=k, max_size=k, unique=True))
    other = list(base)
    for i in positions:
        other[i] = data.draw(words.filter(lambda w: w not in base))
    miner = TemplateMiner()
    a = miner.add(" ".join(base) + " 42")
    b = miner.add(" ".join(other) + " 43")
    assert a != b
    assert miner.template(a) == " ".join(base) + " <*>"


def _corpus(seed_values: list[int]) -> list[str]:
    shapes = [
        "session opened for user {w} by uid={n}",
        "disk {p} is {n} percent full",
        "GET /api/v{n}/items/{n} returned {n} in {n} ms",
        "worker {n} finished job {h} status ok",
        "worker {n} failed job {h} status error",
    ]
    names = ["root", "alice", "bob", "eve"]
    out = []
    for i, v in enumerate(seed_values):
        shape = shapes[v % len(shapes)]
        out.append(shape.format(w=names[(v + i) % 4], n=v * 7 + i, p=f"/dev/sd{v % 3}", h=hex(v * 977 + i)))
    return out


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=120))
def test_add_and_add_many_give_the_same_ids(values: list[int]) -> None:
    lines = _corpus(values)
    one = TemplateMiner()
    singles = one.resolve_many(
        __import__("numpy").asarray([one.add(s) for s in lines], dtype=__import__("numpy").int64)
    )
    many = TemplateMiner()
    batched = many.add_many(lines)
    assert batched.tolist() == singles.tolist()
    assert many.templates() == one.templates()
    assert {c: many.count(c) for c in many.templates()} == {c: one.count(c) for c in one.templates()}
    assert sum(many.count(c) for c in many.templates()) == len(lines)


@given(st.lists(st.integers(0, 10_000), min_size=2, max_size=80), st.integers(0, 79))
def test_pickle_round_trip_keeps_ids_and_continues_identically(values: list[int], cut: int) -> None:
    lines = _corpus(values)
    cut = min(cut, len(lines))
    miner = TemplateMiner()
    first = miner.add_many(lines[:cut])
    clone = pickle.loads(pickle.dumps(miner))
    assert clone.templates() == miner.templates()
    assert [clone.resolve(c) for c in first.tolist()] == first.tolist()
    assert clone.add_many(lines[cut:]).tolist() == miner.add_many(lines[cut:]).tolist()
    assert clone.templates() == miner.templates()


def test_a_value_first_seen_as_constant_becomes_a_variable() -> None:
    miner = TemplateMiner()
    a = miner.add("Invalid user webmaster from 1.2.3.4")
    b = miner.add("Invalid user test9 from 5.6.7.8")  # test9 masks to <*>: more general than a's template
    c = miner.add("Invalid user admin from 9.9.9.9")
    assert a == b == c
    assert miner.template(a) == "Invalid user <*> from <*>"
    assert miner.count(a) == 3 and len(miner) == 1


def test_a_cluster_covered_by_a_generalised_template_merges_into_it() -> None:
    miner = TemplateMiner()
    first = miner.add("job ran green green blue green red")
    second = miner.add("job ran green green blue blue blue")  # 5 of 7 constants: a second cluster
    assert first != second
    # two lines widen the second cluster's last two positions, and it now covers the first
    assert miner.add("job ran green green blue red blue") == second
    assert miner.add("job ran green green blue blue green") == second
    assert miner.resolve(first) == second
    assert miner.templates() == {second: "job ran green green blue <*> <*>"}
    assert miner.count(first) == miner.count(second) == 4
    assert miner.add("job ran green green blue green red") == second  # the old shape resolves too
    assert miner.add_many(["job ran green green blue green red"]).tolist() == [second]
    assert miner.count(second) == 6


def test_ids_are_stable_and_templates_listed() -> None:
    miner = TemplateMiner()
    ids = miner.add_many(["alpha 1", "beta gamma 2", "alpha 3"]).tolist()
    assert ids[0] == ids[2] != ids[1]
    assert miner.templates() == {ids[0]: "alpha <*>", ids[1]: "beta gamma <*>"}
    assert miner.add_many([]).tolist() == []
