"""Progress of a long command on the terminal."""

from typing import Any


class TerminalProgress:
    """A progress bar (tqdm) when the command writes to a terminal, nothing otherwise.

    Pass it as a service's `progress(done, total)` callback; close it when the work ends.
    """

    def __init__(self, stdout: Any, *, unit: str, desc: str) -> None:
        self.enabled = stdout.isatty()
        self.unit, self.desc = unit, desc
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=self.unit, desc=self.desc)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
