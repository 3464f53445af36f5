"""From scored points to alert transitions: which anomalies are worth an alert.

A single anomalous point is a hint, not a page. ``AnomalyAlerter`` turns the detection
engine's output (every scored point with its band, plus the points the filter flagged)
into *alert transitions* per series:

- **fire** when a flagged point is very surprising (probability at least ``high``), or when
  a run of ``sustain`` consecutive points stays outside the band on the side where the run
  started with a flagged point (the ensemble damps repeat alarms, so the band, not the
  flag, tells whether the condition persists);
- but only when the run is *practically* significant, not just statistically: at some point
  its value was at least ``min_rel`` (10 %) away from the expected value, or ``min_z``
  (5) standard deviations of the band (whose half-width is 3 of them). A 4 % dip in
  traffic can be very unlikely and still not worth waking anyone. While a series is
  *young* (less than ``young_s``, a day, of its own history: no seasonal profile vouches
  for its band yet, and its spread rests on few points) only the relative test counts:
  a 5 % rise of a busy counter is many band-widths on the morning ramp of a first day;
- **fire** also when ``persist`` consecutive points stay outside the band on one side with at
  least ``min_rel`` relative deviation, flagged or not: the ensemble damps a series' scores
  for a while after an alarm, so a lasting shift soon after an earlier episode may never be
  flagged, and a condition that holds for ten minutes is worth a page whatever its scores;
- **resolve** after ``clear`` consecutive points inside the band.

State is a few arrays indexed by the engine's dense series slots, so a batch of many
series is decided without a Python loop per point (one vectorised round per point of the
busiest series in the batch, as in the engine).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from detect.base import SlotMap
from detect.engine import arrival_rounds

__all__ = ["AlertTransitions", "AnomalyAlerter"]

F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class AlertTransitions:
    """Series whose alert fired or resolved in one batch, in event-time order.

    ``firing`` is True for a fire, False for a resolve. ``ts`` is the point's event time in
    microseconds since the epoch; ``started`` is when the run that fired began (the onset).
    """

    series_id: NDArray[np.uint64]
    ts: NDArray[np.int64]
    started: NDArray[np.int64]
    firing: NDArray[np.bool_]
    value: F64
    expected: F64
    probability: F64
    upward: NDArray[np.bool_]
    young: NDArray[np.bool_]  # the series had less than ``young_s`` of history at the transition

    def __len__(self) -> int:
        return len(self.series_id)


class AnomalyAlerter:
    """Decide alert fire/resolve per series from the detection engine's bands and anomalies.

    Parameters
    ----------
    sustain
        Consecutive out-of-band points (the first one flagged) that make an alert.
    high
        Probability at which a single flagged point fires at once.
    clear
        Consecutive in-band points that resolve a firing alert.
    min_rel, min_z
        Practical significance: the run must reach this relative deviation, or this many
        standard deviations (the band's half-width is three), before it fires.
    warm_points
        Points of a series' own history before it may alert (its anomalies are still
        recorded). Warm-up is counted in points, not time, because what makes a baseline
        trustworthy is how many observations it has: the flat robust views settle after tens
        of points, and the views that need longer (the seasonal profiles need days of
        coverage, the likelihood's tail starts from a prior) hold themselves back until they
        have it. At a 60 s interval the default of 30 lets a new install alert in its first hour.
    learning_s
        An optional extra floor, in seconds of a series' own history, on top of
        ``warm_points`` (default 0: none).
    persist
        Consecutive out-of-band points, on one side and relatively large (``min_rel``), that
        fire without any flagged point (0: off).
    young_s
        Seconds of its own history during which a series counts as young: its runs are
        practically significant by ``min_rel`` alone, and its transitions say so
        (``AlertTransitions.young``) for the promotion rule of young incidents.

    Example
    -------
    >>> import pyarrow as pa
    >>> ts = pa.array([i * 60_000_000 for i in range(8)], pa.timestamp("us"))
    >>> value = [0.0, 0.0, 9.0, 9.0, 9.0, 0.0, 0.0, 0.0]
    >>> bands = pa.table({"series_id": pa.array([7] * 8, pa.uint64()), "ts": ts, "value": value,
    ...                   "probability": [0.0, 0.0, 0.3, 0.1, 0.1, 0.0, 0.0, 0.0],
    ...                   "expected": [0.0] * 8, "lower": [-1.0] * 8, "upper": [1.0] * 8})
    >>> flagged = [False, False, True, False, False, False, False, False]
    >>> a = AnomalyAlerter(sustain=3, clear=2, warm_points=0)
    >>> t = a.observe(bands, pa.array(flagged))
    >>> t.firing.tolist(), (t.ts // 60_000_000).tolist(), (t.started // 60_000_000).tolist()
    ([True, False], [4, 6], [2, 2])
    """

    def __init__(
        self,
        sustain: int = 2,
        high: float = 0.6,
        clear: int = 5,
        learning_s: float = 0.0,
        min_rel: float = 0.1,
        min_z: float = 5.0,
        warm_points: int = 30,
        young_s: float = 86400.0,
        persist: int = 10,
    ) -> None:
        if sustain < 1 or clear < 1:
            raise ValueError("sustain and clear must be at least 1")
        if warm_points < 0 or learning_s < 0 or young_s < 0 or persist < 0:
            raise ValueError("warm_points, learning_s, young_s and persist must not be negative")
        self.sustain = sustain
        self.high = high
        self.clear = clear
        self.learning_s = learning_s
        self.min_rel = min_rel
        self.min_z = min_z
        self.warm_points = warm_points
        self.young_s = young_s
        self.persist = persist
        self.slots = SlotMap()
        self.run = np.zeros(0, dtype=np.int64)  # consecutive out-of-band points of the current run
        self.side = np.zeros(0, dtype=np.int8)  # +1 above, -1 below, 0 no run
        self.onset = np.zeros(0, dtype=np.int64)  # ts of the run's first point
        self.calm = np.zeros(0, dtype=np.int64)  # consecutive in-band points while firing
        self.active = np.zeros(0, dtype=bool)
        self.first = np.zeros(0, dtype=np.int64)  # ts of the series' first point
        self.seen = np.zeros(0, dtype=np.int64)  # points of the series seen before this one
        self.significant = np.zeros(0, dtype=bool)  # the current run was practically significant
        # the current out-of-band stretch, flagged or not: length, side, onset, relatively large
        self.out_run = np.zeros(0, dtype=np.int64)
        self.out_side = np.zeros(0, dtype=np.int8)
        self.out_onset = np.zeros(0, dtype=np.int64)
        self.out_large = np.zeros(0, dtype=bool)

    def _grow(self, need: int) -> None:
        have = len(self.run)
        if need <= have:
            return
        extra = max(need, 2 * have, 64) - have
        self.run = np.r_[self.run, np.zeros(extra, dtype=np.int64)]
        self.side = np.r_[self.side, np.zeros(extra, dtype=np.int8)]
        self.onset = np.r_[self.onset, np.zeros(extra, dtype=np.int64)]
        self.calm = np.r_[self.calm, np.zeros(extra, dtype=np.int64)]
        self.active = np.r_[self.active, np.zeros(extra, dtype=bool)]
        self.first = np.r_[self.first, np.full(extra, np.iinfo(np.int64).max, dtype=np.int64)]
        self.seen = np.r_[self.seen, np.zeros(extra, dtype=np.int64)]
        self.significant = np.r_[self.significant, np.zeros(extra, dtype=bool)]
        self.out_run = np.r_[self.out_run, np.zeros(extra, dtype=np.int64)]
        self.out_side = np.r_[self.out_side, np.zeros(extra, dtype=np.int8)]
        self.out_onset = np.r_[self.out_onset, np.zeros(extra, dtype=np.int64)]
        self.out_large = np.r_[self.out_large, np.zeros(extra, dtype=bool)]

    def firing_series(self) -> NDArray[np.uint64]:
        """Series whose alert is firing now."""
        n = len(self.slots)
        return self.slots.ids()[:n][self.active[:n]]

    def observe(
        self, bands: pa.Table, flagged: pa.Array | pa.ChunkedArray | NDArray[np.bool_]
    ) -> AlertTransitions:
        """Advance every series by the points of ``bands`` (engine order); return the transitions."""
        n = bands.num_rows
        ids = bands.column("series_id").to_numpy().astype(np.uint64, copy=False)
        ts = pc.cast(bands.column("ts"), pa.int64()).to_numpy()
        value = bands.column("value").to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        prob = bands.column("probability").to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        expected = bands.column("expected").to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        lower = bands.column("lower").to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        upper = bands.column("upper").to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        flag = np.asarray(flagged, dtype=bool) if n else np.zeros(0, dtype=bool)
        slot = self.slots.slots(ids)
        if n:
            self._grow(len(self.slots))
        with np.errstate(invalid="ignore"):
            side_of = np.where(value > upper, 1, np.where(value < lower, -1, 0)).astype(np.int8)
        side_of[~np.isfinite(value)] = 0
        with np.errstate(invalid="ignore", divide="ignore"):
            dev = np.abs(value - expected)
            rel_of = dev >= self.min_rel * np.abs(expected)
            z_of = dev >= self.min_z * (upper - lower) / 6.0
        rel_of &= np.isfinite(dev)
        z_of &= np.isfinite(dev)
        young_of = np.zeros(n, dtype=bool)
        out: list[NDArray[np.int64]] = []
        kinds: list[NDArray[np.bool_]] = []
        starts: list[NDArray[np.int64]] = []
        for index in arrival_rounds(slot):
            s = slot[index]
            side, f = side_of[index], flag[index]
            cur = self.side[s]
            self.first[s] = np.minimum(self.first[s], ts[index])
            age = ts[index] - self.first[s]
            aged = age >= int(self.learning_s * 1e6)
            young = age < int(self.young_s * 1e6)
            young_of[index] = young
            learned = aged & (self.seen[s] >= self.warm_points)
            self.seen[s] += 1
            f = f & learned
            # a run starts on a flagged out-of-band point and continues on the same side
            starts_run = f & (side != 0) & ((cur == 0) | (side != cur))
            continues = (cur != 0) & (side == cur)
            self.run[s] = np.where(starts_run, 1, np.where(continues, self.run[s] + 1, 0))
            self.onset[s] = np.where(starts_run, ts[index], self.onset[s])
            self.side[s] = np.where(starts_run, side, np.where(continues, cur, 0)).astype(np.int8)
            in_run = starts_run | continues
            sig = rel_of[index] | (z_of[index] & ~young)
            self.significant[s] = in_run & (sig | (continues & self.significant[s]))
            # the out-of-band stretch, whatever the flags
            stays = (side != 0) & (side == self.out_side[s])
            self.out_run[s] = np.where(side == 0, 0, np.where(stays, self.out_run[s] + 1, 1))
            self.out_onset[s] = np.where(stays, self.out_onset[s], ts[index])
            self.out_side[s] = side
            self.out_large[s] = (side != 0) & (rel_of[index] | (stays & self.out_large[s]))
            was = self.active[s]
            long_run = (self.run[s] >= self.sustain) & (self.side[s] != 0)
            fire = ~was & self.significant[s] & (long_run | (f & (prob[index] >= self.high)))
            self.onset[s] = np.where(fire & (self.run[s] == 0), ts[index], self.onset[s])
            if self.persist:
                lasting = ~was & ~fire & learned & self.out_large[s] & (self.out_run[s] >= self.persist)
                self.onset[s] = np.where(lasting, self.out_onset[s], self.onset[s])
                fire = fire | lasting
            inside = side == 0
            self.calm[s] = np.where(was & inside, self.calm[s] + 1, 0)
            resolve = was & (self.calm[s] >= self.clear)
            self.active[s] = (was & ~resolve) | fire
            self.calm[s] = np.where(resolve | fire, 0, self.calm[s])
            hit = fire | resolve
            if hit.any():
                out.append(index[hit])
                kinds.append(fire[hit])
                starts.append(self.onset[s][hit])
        if not out:
            empty = np.zeros(0, dtype=np.int64)
            return AlertTransitions(
                np.zeros(0, dtype=np.uint64), empty, empty, np.zeros(0, dtype=bool),
                np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool), np.zeros(0, dtype=bool),
            )  # fmt: skip
        rows = np.concatenate(out)
        firing = np.concatenate(kinds)
        started = np.concatenate(starts)
        order = np.argsort(ts[rows], kind="stable")
        rows, firing, started = rows[order], firing[order], started[order]
        return AlertTransitions(
            ids[rows],
            ts[rows],
            started,
            firing,
            value[rows],
            expected[rows],
            prob[rows],
            value[rows] > expected[rows],
            young_of[rows],
        )

    def state_dict(self) -> dict[str, NDArray[np.generic]]:
        """Arrays to snapshot (with the slot map's ids)."""
        n = len(self.slots)
        return {
            "ids": self.slots.ids()[:n],
            "run": self.run[:n], "side": self.side[:n], "onset": self.onset[:n],
            "calm": self.calm[:n], "active": self.active[:n], "first": self.first[:n],
            "seen": self.seen[:n],
        }  # fmt: skip
