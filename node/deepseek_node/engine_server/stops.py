"""Stop sequences over streamed text (pure).

Text is released as soon as it cannot be the start of a stop sequence, so a stream never
shows a client part of a stop string that a later token completes.
"""

from __future__ import annotations


class StopTracker:
    """Feed decoded text increments; get back what may be sent and whether a stop was hit.

    >>> tracker = StopTracker(("\\n\\n",))
    >>> tracker.feed("Hello\\n")
    ('Hello', False)
    >>> tracker.feed("\\nWorld")
    ('', True)
    """

    def __init__(self, stops: tuple[str, ...]):
        self.stops = tuple(s for s in stops if s)
        self.pending = ""
        self.text = ""  # everything released so far

    def feed(self, piece: str) -> tuple[str, bool]:
        self.pending += piece
        for stop in self.stops:
            index = self.pending.find(stop)
            if index >= 0:
                released = self.pending[:index]
                self.pending = ""
                self.text += released
                return released, True
        hold = self._held_suffix()
        released = self.pending[: len(self.pending) - hold]
        self.pending = self.pending[len(self.pending) - hold:]
        self.text += released
        return released, False

    def flush(self) -> str:
        """At the end of generation: release what was held back."""
        released, self.pending = self.pending, ""
        self.text += released
        return released

    def _held_suffix(self) -> int:
        """Length of the longest suffix of ``pending`` that begins some stop sequence."""
        longest = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(self.pending)), longest, -1):
                if self.pending.endswith(stop[:size]):
                    longest = size
                    break
        return longest
