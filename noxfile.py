"""Developer tasks: ``nox`` runs tests, lint and typing; ``nox -s bench`` the benchmarks."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typing"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite against real gpg, tar, SQLite and loopback servers."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff's checks and formatting."""
    session.install("ruff")
    session.run("ruff", "check", "aglacier", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "aglacier", "tests", "benchmarks", "noxfile.py")


@nox.session(python=PYTHON)
def typing(session: nox.Session) -> None:
    """mypy --strict over the package, the tests and the benchmarks."""
    session.install("-e", ".[dev]")
    session.run("mypy", "--strict")


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks: each prints ratios against a baseline measured in the same run."""
    session.install("-e", ".[test]")
    for script in (
        "benchmarks/bench_checksum.py",
        "benchmarks/bench_local.py",
        "benchmarks/bench_backup.py",  # the longest: a few minutes
    ):
        session.run("python", script, *session.posargs)
