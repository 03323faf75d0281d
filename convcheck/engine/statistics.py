"""The numbers a diagnosis reports: how far the output is from the reference (block by block,
no output-sized copy), where a mismatch sits, and what the verdict rests on."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .reference import Workspace


class Differences:
    """|output - reference| summarised a block of rows at a time (what the statistics need of
    the reference): its first largest element (NaN first, as argmax has it), the reference
    there, and the largest relative difference where the reference is not 0."""

    def __init__(self, output: np.ndarray):
        self.output = output
        self.index: Optional[tuple] = None
        self.max_abs: Optional[float] = None
        self.reference_at: Optional[float] = None
        self.relative: list = []

    @classmethod
    def of(cls, output: np.ndarray, reference) -> "Differences":
        """From a reference array, or from (sample, first row, values) blocks of one."""
        differences = cls(output)
        blocks = reference
        if isinstance(reference, np.ndarray):
            rows_per = max(1, (1 << 17) // max(1, reference[0, :1].size))
            blocks = ((n, r0, reference[n, r0:r0 + rows_per]) for n in range(reference.shape[0])
                      for r0 in range(0, reference.shape[1], rows_per))
        space = Workspace()
        for n, i0, values in blocks:
            diff = np.subtract(output[n, i0:i0 + values.shape[0]], values, dtype=np.float64,
                               out=space.get("diff", values.shape))
            differences.add(n, i0, values, np.abs(diff, out=diff), space)
        return differences

    def add(self, n: int, i0: int, reference: np.ndarray, diff: np.ndarray, space: Workspace) -> None:
        """A block: `reference` rows i0... of sample n and `diff`, |output - reference| there."""
        self.merge(self.summary(n, i0, reference, diff, space))

    @staticmethod
    def summary(n: int, i0: int, reference: np.ndarray, diff: np.ndarray, space: Workspace) -> tuple:
        """What `merge` keeps of a block (see `add`), computed apart from the others: (its
        first largest difference, where, the reference there, its largest relative one)."""
        at = int(np.argmax(diff))
        value = float(diff.reshape(-1)[at])
        local = np.unravel_index(at, diff.shape)
        index = (n, i0 + int(local[0]), int(local[1]), int(local[2]))
        relative = None
        nonzero = np.not_equal(reference, 0, out=space.get("nonzero", reference.shape, bool))
        if nonzero.any():
            ratios = space.get("scratch", diff.shape)
            np.divide(diff, reference, out=ratios, where=nonzero)
            np.abs(ratios, out=ratios)
            relative = np.max(ratios, where=nonzero, initial=0.0)
        return value, index, float(reference[local]), relative

    def merge(self, summary: tuple) -> None:
        """A block's `summary`, blocks taken in order."""
        value, index, reference_at, relative = summary
        if self.max_abs is None or (not np.isnan(self.max_abs) and (value > self.max_abs or np.isnan(value))):
            self.index, self.max_abs, self.reference_at = index, value, reference_at
        if relative is not None:
            self.relative.append(relative)


def index_in_user_shape(index, user_shape: tuple, reading: Optional[str] = None) -> tuple[int, ...]:
    """An (n, i, j, channel) index into the canonical (N, Ho, Wo, C_out) output (or an
    (i, j, channel) one) as an index into the caller's own array.

    `reading` names the caller's axes in order ('hwc', 'nchw', 'hw', 'nhw', ...); by
    default it follows the array's rank in channels-last order.
    """
    values = [int(x) for x in index]
    if len(values) == 3:
        values = [0] + values
    by_axis = dict(zip("nhwc", values))
    if reading is None:
        reading = {2: "hw", 3: "hwc", 4: "nhwc"}.get(len(user_shape), "hwc")
    return tuple(by_axis[axis] for axis in reading)

