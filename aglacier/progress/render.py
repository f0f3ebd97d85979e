"""The four ways to show progress; ``cli.resources.reporter_for`` picks one.

- :class:`RichReporter`: live bars on a terminal (stderr).
- :class:`PlainReporter`: timestamped lines for cron and logs (stderr).
- :class:`JsonReporter`: one JSON object per event, for scripts (stdout).
- :class:`QuietReporter`: warnings, errors and failed runs only (stderr).

All are thread-safe, never raise from ``emit`` (a broken stream silences
them) and have an idempotent ``close``.
"""

from __future__ import annotations

from aglacier.progress.jsonl import JsonReporter
from aglacier.progress.plain import PlainReporter, QuietReporter
from aglacier.progress.rich_view import RichReporter

__all__ = ["JsonReporter", "PlainReporter", "QuietReporter", "RichReporter"]
