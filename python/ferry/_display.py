"""Progress lines while waiting: an updating line in a notebook, a
carriage-return line on a terminal, nothing when output is piped."""

from __future__ import annotations

import html
import sys
import time


def in_notebook() -> bool:
    ip = sys.modules.get("IPython")
    if ip is None:
        return False
    try:
        shell = ip.get_ipython()
    except Exception:
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


class _Line:
    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return f"<code>{html.escape(self.text)}</code>"


class Progress:
    """A status line that starts after `delay` seconds (quick calls show
    nothing) and is redrawn at most every `every` seconds."""

    def __init__(self, enabled: bool | None = None, delay: float = 0.5, every: float = 0.5):
        self.mode = None
        if enabled is None or enabled:
            if in_notebook():
                self.mode = "notebook"
            elif enabled or sys.stderr.isatty():
                self.mode = "tty"
        self.start = time.monotonic()
        self.delay = delay
        self.every = every
        self.last = 0.0
        self.handle = None
        self.shown = False
        self.width = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def update(self, text_fn) -> None:
        """text_fn() builds the line; it is called only when a redraw is due."""
        if self.mode is None:
            return
        now = time.monotonic()
        if now - self.start < self.delay or now - self.last < self.every:
            return
        self.last = now
        self._draw(text_fn())

    def _draw(self, text: str) -> None:
        self.shown = True
        if self.mode == "notebook":
            try:
                from IPython.display import display
                if self.handle is None:
                    self.handle = display(_Line(text), display_id=True)
                else:
                    self.handle.update(_Line(text))
            except Exception:
                self.mode = None
        else:
            pad = max(0, self.width - len(text))
            sys.stderr.write("\r" + text + " " * pad)
            sys.stderr.flush()
            self.width = len(text)

    def close(self, text: str) -> None:
        """Replace the line with a final one, if a line was shown at all."""
        if self.mode is None or not self.shown:
            return
        self._draw(text)
        if self.mode == "tty":
            sys.stderr.write("\n")
            sys.stderr.flush()
