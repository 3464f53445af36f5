"""Streaming log-template mining (Drain-style): one pass, line by line, no look-ahead.

1. Mask: a line is split on whitespace and each token is masked on its own (URLs, UUIDs, IPs, times,
   MACs, ``host:port``, paths, ``key=value`` values, booleans, date words, and any identifier that holds
   a digit become ``<*>``). Masked tokens are memoised, so a token costs one dict lookup after its first
   sight. Runs of wildcards, and a wildcard followed by a unit (``<*> KB``), collapse into one ``<*>``,
   which keeps variable-length values from changing the token count.
2. Exact shape: a masked line seen before goes straight to its cluster (the common case).
3. Route and match: a new shape is routed by its token count and first two tokens (Drain's prefix
   tree; a qualified name such as ``com.acme.Job:`` routes as ``<*>``) and joins the cluster whose
   constant tokens it repeats best, if that share is at least ``similarity`` (0.81: more than four in
   five), or whose constants it all repeats while being more general itself (its first line had a value
   that later lines show to be variable). Positions that differ become ``<*>``.
4. Merge: when a template generalises, clusters in its bucket that it now covers merge into it, and a
   merged id resolves to the survivor.

Per-service log evidence: :func:`surging_templates` compares template counts in a window with a
baseline and returns the templates that are new or whose rate rose beyond Poisson noise.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.stats import poisson

WILDCARD = "<*>"

#: Generic variable patterns, applied to each whitespace token (one combined regex, compiled once).
MASK_PATTERNS: tuple[str, ...] = (
    r"(?<![\w+.\-])[A-Za-z][\w+.\-]*://\S+",  # URL
    r"(?<![\w\-])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![\w\-])",  # UUID
    r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?(?![\w.])",  # IPv4[:port]
    r"(?<![\w:])\d{1,2}:\d\d(?::\d\d)?(?:[.,]\d+)?(?![\w:])",  # time of day
    r"(?<![\w:])(?=[0-9a-fA-F:]*\d)(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{0,4}(?![\w:.])",  # IPv6, MAC
    r"(?<![\w.-])[A-Za-z][\w-]*(?:\.[\w-]+)+:\d{1,5}(?![\w.\-:])",  # host.name:port
    r"(?<![\w./])(?:/[\w.\-@~+%]+){2,}/?",  # a path of two or more parts
    r"^(?:\(\)|\[\]|\{\})$",  # an empty bracket pair standing alone: an empty value
    r"(?<==)[^\s,;)\]}'\"]+",  # the value of key=value
    r"(?<!\w)(?:true|false|null|True|False|None|TRUE|FALSE|NULL)(?!\w)",  # booleans, null
    r"^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun|Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)$",  # date words
    r"(?<![\w.\-])[\w.\-]*\d[\w.\-]*",  # any identifier holding a digit: numbers, hex, ids, versions, times
)
#: Units that belong to the number before them (``12 ms``, ``1.5 KB``, ``3 bytes``).
UNITS = r"(?:[KMGTP]i?B|[kKMG]b|B|bytes?|ms|us|ns|s|secs?|seconds?|mins?|minutes?|h|hrs?|hours?|days?)"

_MASK_RE = re.compile("|".join(f"(?:{p})" for p in MASK_PATTERNS))
#: Wildcards joined by punctuation only (``<*>:<*>``, ``<*>##<*>``) are one variable.
_JOINED_RE = re.compile(r"<\*>(?:[^\w\s<>]*<\*>)+")
#: A token with no letter or digit outside its wildcards is itself a wildcard (``(<*>)``, ``<*>,``).
_BARE_RE = re.compile(r"[^\w]*(?:<\*>[^\w]*)+")
#: Over a masked line: a wildcard followed by wildcards or units is one wildcard.
_RUN_RE = re.compile(rf"<\*>(?: (?:<\*>|{UNITS}[)\],;]*(?= |$)))+")
#: A token that is one identifier holding a digit: numbers, ids, versions (the catch-all above, whole).
_IDENT_DIGIT_RE = re.compile(r"[\w.\-]*\d[\w.\-]*")
#: Whole words that are values, not template text: dates and booleans.
_VALUE_WORDS = frozenset(
    {
        *("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
        *("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        *("true", "false", "null", "True", "False", "None", "TRUE", "FALSE", "NULL"),
    }
)

#: A qualified name (``com.acme.Job``, ``a/b``): often a variable, so it never routes a line.
_QUALIFIED_RE = re.compile(r"\w[./]\w")
#: Separates lines inside one batched string (a line holding it takes the per-line path).
_SEP = "\x00"
#: Token -> masked token, shared by every miner (a pure function's memo, so no state to persist).
_TOKEN_CACHE: dict[str, str] = {_SEP: _SEP}
_TOKEN_CACHE_MAX = 200_000
_CHUNK = 4096


@dataclass(frozen=True)
class MinerConfig:
    """Miner settings; the one default serves every log source.

    similarity: share of a cluster template's constant tokens a line must repeat to join it
        (0.81 so that one differing word in five splits: ``client A.`` vs ``client B.``).
    prefix_depth: leading tokens that route a line (Drain's tree depth minus two).
    max_exact: masked lines remembered for the exact-match fast path (cleared when full).
    """

    similarity: float = 0.81
    prefix_depth: int = 2
    max_exact: int = 100_000


DEFAULT_CONFIG = MinerConfig()


def _masked_token(tok: str) -> str:
    """One whitespace token masked; memoised unless it is a lone variable (those rarely repeat)."""
    if tok.isdigit() or _IDENT_DIGIT_RE.fullmatch(tok) is not None:
        return WILDCARD  # the commonest variables: one cheap test instead of the full alternation
    if tok.isalpha():
        masked = WILDCARD if tok in _VALUE_WORDS else tok
    else:
        masked = _MASK_RE.sub(WILDCARD, tok)
        if WILDCARD in masked:
            masked = _JOINED_RE.sub(WILDCARD, masked)
            if _BARE_RE.fullmatch(masked) is not None:
                masked = WILDCARD
    if len(_TOKEN_CACHE) >= _TOKEN_CACHE_MAX:
        clear_token_cache()
    _TOKEN_CACHE[tok] = masked
    return masked


def clear_token_cache() -> None:
    """Forget the memoised token masks (a benchmark measuring a cold start calls this)."""
    _TOKEN_CACHE.clear()
    _TOKEN_CACHE[_SEP] = _SEP


def mask_line(content: str) -> str:
    """``content`` with generic variables replaced by ``<*>``, tokens joined by one space.

    >>> mask_line("Connection from 10.0.0.1:22 closed after 35 ms, id=ab12 (user bob)")
    'Connection from <*> closed after <*> id=<*> (user bob)'
    """
    get = _TOKEN_CACHE.get
    line = " ".join([get(tok) or _masked_token(tok) for tok in content.split()])
    return _RUN_RE.sub(WILDCARD, line) if WILDCARD in line else line


def _mask_lines(lines: Sequence[str]) -> list[str]:
    """``mask_line`` over many lines with one split, one join and one regex pass for all of them."""
    if not lines:
        return []
    text = f" {_SEP} ".join(lines)
    if text.count(_SEP) != max(len(lines) - 1, 0):  # a line holds NUL itself: the slow path
        return [mask_line(line) for line in lines]
    get = _TOKEN_CACHE.get
    joined = " ".join([get(tok) or _masked_token(tok) for tok in text.split()])
    return [line.strip() for line in _RUN_RE.sub(WILDCARD, joined).split(_SEP)]


def mask(content: str) -> list[str]:
    """The masked tokens of ``content``.

    >>> mask("took 12 ms and 3.5 KB, from /var/log/app.log to 0x1f")
    ['took', '<*>', 'and', '<*>', 'from', '<*>', 'to', '<*>']
    """
    return mask_line(content).split()


class TemplateMiner:
    """Online log-template miner: ``add`` a line, get its cluster id.

    One pass in arrival order, no per-source settings; pickle it to persist it. Ids are dense ints;
    when two clusters' templates become equal they merge, and ``resolve`` maps the old id to the
    survivor (``add_many`` returns resolved ids).

    Parameters
    ----------
    config
        Similarity threshold and routing depth; ``DEFAULT_CONFIG`` unless you know better.

    Example
    -------
    >>> miner = TemplateMiner()
    >>> a = miner.add("session opened for user root by uid=0")
    >>> b = miner.add("session opened for user alice by uid=1000")
    >>> c = miner.add("disk /dev/sda1 is full")
    >>> a == b, a == c
    (True, False)
    >>> miner.template(a)
    'session opened for user <*> by uid=<*>'
    >>> miner.count(a)
    2
    >>> miner.add_many(["disk /dev/sdb2 is full", "session opened for user eve by uid=7"]).tolist() == [c, a]
    True
    """

    def __init__(self, config: MinerConfig = DEFAULT_CONFIG) -> None:
        self.config = config
        self._templates: list[list[str]] = []
        self._counts: list[int] = []
        self._alias: list[int] = []
        self._buckets: dict[tuple[str | int, ...], list[int]] = {}
        self._exact: dict[str, int] = {}

    # -- public -------------------------------------------------------------------------------------
    def add(self, content: str) -> int:
        """Absorb one line; the id of the cluster it joined (or started)."""
        key = mask_line(content)
        cid = self._exact.get(key)
        if cid is None:
            return self._add_new_shape(key)
        if self._alias[cid] != cid:
            cid = self.resolve(cid)
            self._exact[key] = cid
        self._counts[cid] += 1
        return cid

    def add_many(self, lines: Iterable[str]) -> np.ndarray:
        """Absorb lines in order: the fast path. Each line's id, resolved through later merges."""
        lines = lines if isinstance(lines, list) else list(lines)
        parts = []
        for start in range(0, len(lines), _CHUNK):
            keys = _mask_lines(lines[start : start + _CHUNK])
            get = self._exact.get
            ids = [get(key, -1) for key in keys]
            known = np.asarray(ids, dtype=np.int64)
            self._add_counts(known[known >= 0])
            for i in np.flatnonzero(known < 0).tolist():  # shapes unseen before this chunk, in order
                cid = get(keys[i])
                if cid is None:
                    ids[i] = self._add_new_shape(keys[i])
                else:
                    self._counts[cid] += 1
                    ids[i] = cid
            parts.append(np.asarray(ids, dtype=np.int64))
        out = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        self._settle_counts()
        return self.resolve_many(out)

    def resolve(self, cid: int) -> int:
        """The surviving id of a cluster that may have been merged into another."""
        alias = self._alias
        root = cid
        while alias[root] != root:
            root = alias[root]
        while alias[cid] != root:
            alias[cid], cid = root, alias[cid]
        return root

    def resolve_many(self, ids: np.ndarray) -> np.ndarray:
        """``resolve`` over an array of ids."""
        if len(ids) == 0:
            return ids
        table = np.fromiter((self.resolve(c) for c in range(len(self._alias))), dtype=np.int64)
        resolved: np.ndarray = table[ids]
        return resolved

    def template(self, cid: int) -> str:
        """The template of a cluster, ``<*>`` for variables."""
        return " ".join(self._templates[self.resolve(cid)])

    def count(self, cid: int) -> int:
        """Lines absorbed by a cluster and by everything merged into it."""
        self._settle_counts()
        return self._counts[self.resolve(cid)]

    def templates(self) -> dict[int, str]:
        """Every live cluster id and its template."""
        return {c: " ".join(t) for c, t in enumerate(self._templates) if self._alias[c] == c}

    def __len__(self) -> int:
        return sum(1 for c, a in enumerate(self._alias) if a == c)

    # -- internals ----------------------------------------------------------------------------------
    def _add_counts(self, ids: np.ndarray) -> None:
        if len(ids):
            counts = self._counts
            uniq, n = np.unique(ids, return_counts=True)
            for cid, k in zip(uniq.tolist(), n.tolist(), strict=True):
                counts[cid] += k

    def _settle_counts(self) -> None:
        """Move counts recorded against merged ids onto their survivors."""
        counts = self._counts
        for c, a in enumerate(self._alias):
            if a != c and counts[c]:
                counts[self.resolve(c)] += counts[c]
                counts[c] = 0

    def _add_new_shape(self, key: str) -> int:
        if len(self._exact) >= self.config.max_exact:
            self._exact.clear()
        cid = self._match(key.split())
        self._exact[key] = cid
        return cid

    def _route(self, tokens: Sequence[str]) -> tuple[str | int, ...]:
        head = tokens[: self.config.prefix_depth]
        return (len(tokens), *(WILDCARD if _QUALIFIED_RE.search(t) else t for t in head))

    def _match(self, tokens: list[str]) -> int:
        bucket = self._buckets.setdefault(self._route(tokens), [])
        best, best_sim = -1, -1.0
        templates = self._templates
        for cid in bucket:
            same = const = 0
            for a, b in zip(templates[cid], tokens, strict=True):
                if a != WILDCARD:
                    const += 1
                    if a == b:
                        same += 1
            sim = same / const if const else 1.0
            if sim > best_sim:
                best, best_sim = cid, sim
        if best_sim < self.config.similarity:
            # A line more general than a cluster (its constants are all the cluster's) joins it:
            # the cluster's first line had a value that this line shows to be variable.
            for cid in bucket:
                if all(b == WILDCARD or a == b for a, b in zip(templates[cid], tokens, strict=True)):
                    best, best_sim = cid, 1.0
                    break
        if best >= 0 and best_sim >= self.config.similarity:
            tmpl = templates[best]
            self._counts[best] += 1
            if tmpl != tokens:
                new = [a if a == b else WILDCARD for a, b in zip(tmpl, tokens, strict=True)]
                if new != tmpl:
                    templates[best] = new
                    self._merge_covered(best, bucket)
            return best
        cid = len(templates)
        templates.append(tokens)
        self._counts.append(1)
        self._alias.append(cid)
        bucket.append(cid)
        return cid

    def _merge_covered(self, cid: int, bucket: list[int]) -> None:
        """Merge into ``cid`` the clusters of its bucket that its (just generalised) template covers."""
        tmpl = self._templates[cid]
        templates = self._templates
        covered = [
            o
            for o in bucket
            if o != cid and all(a in (WILDCARD, b) for a, b in zip(tmpl, templates[o], strict=True))
        ]
        for other in covered:
            self._alias[other] = cid
            self._counts[cid] += self._counts[other]
            self._counts[other] = 0
            bucket.remove(other)


class Surge(NamedTuple):
    """A template that is new in the window, or whose rate there rose beyond Poisson noise."""

    cid: int
    window_count: int
    base_count: int
    #: Window rate over base rate (``inf`` for a new template).
    ratio: float
    is_new: bool


def surging_templates(
    base: Mapping[int, int],
    window: Mapping[int, int],
    base_s: float,
    window_s: float,
    *,
    min_count: int = 5,
    min_ratio: float = 3.0,
    alpha: float = 1e-4,
    min_new: int = 1,
) -> list[Surge]:
    """Templates new in ``window`` or surging there against ``base`` (counts per template id).

    A template absent from the baseline is new once it has ``min_new`` lines in the window. A known
    one surges when it has at least ``min_count`` lines, its rate is at least ``min_ratio`` times the
    baseline rate, and seeing that many lines is unlikely under a Poisson law with the baseline rate
    times the window length (upper tail below ``alpha``). New templates come first, then by ratio.

    Parameters
    ----------
    base, window
        Lines per template id in the baseline period and in the window under suspicion.
    base_s, window_s
        Their lengths in seconds.

    Example
    -------
    >>> base = {1: 600, 2: 60}  # one hour: 10/min and 1/min
    >>> window = {1: 52, 2: 40, 3: 2}  # five minutes
    >>> [(s.cid, s.window_count, s.is_new) for s in surging_templates(base, window, 3600.0, 300.0)]
    [(3, 2, True), (2, 40, False)]
    >>> round(surging_templates(base, window, 3600.0, 300.0)[1].ratio, 1)
    8.0
    """
    if window_s <= 0:
        raise ValueError(f"window_s must be positive, got {window_s}")
    out: list[Surge] = []
    for cid, k in window.items():
        if k <= 0:
            continue
        b = base.get(cid, 0)
        if b <= 0 or base_s <= 0:
            if k >= min_new:
                out.append(Surge(cid, k, 0, math.inf, True))
            continue
        expected = b / base_s * window_s
        ratio = k / expected
        if k >= min_count and ratio >= min_ratio and float(poisson.sf(k - 1, expected)) < alpha:
            out.append(Surge(cid, k, b, ratio, False))
    out.sort(key=lambda s: (not s.is_new, -s.ratio, -s.window_count, s.cid))
    return out
