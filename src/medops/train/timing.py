"""Where a training step's time goes: seconds per phase, summed over the steps run.

Reported with the loop's metrics so a benchmark (or a user) sees whether data, forward,
backward or the optimizer dominates without a profiler. On a CPU every phase ends when its
work does; on a GPU the split is where work was queued (kernels run asynchronously).
"""

from __future__ import annotations

import time

PHASES = ("data", "forward", "backward", "optimizer")


class PhaseClock:
    """``start()`` at the top of a step, ``lap(phase)`` at the end of each phase."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self._last = time.perf_counter()

    def start(self) -> None:
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] += now - self._last
        self._last = now

    def metrics(self) -> dict[str, float]:
        return {f"seconds_{phase}": value for phase, value in self.seconds.items()}
