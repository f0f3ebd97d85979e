"""Run the emulator by hand: ``python -m tests.vault_emulator --port 0 --data DIR``.

The first line on stdout is the URL it listens on (flushed at once, so a parent process can
read it); it runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from .server import DEFAULT_ACCOUNT_ID, DEFAULT_REGION, EmulatorServer


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.vault_emulator", description="Strict Glacier vault API emulator"
    )
    parser.add_argument("--data", type=Path, required=True, help="data folder (created)")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--job-delay", type=float, default=0.0, help="seconds before a job turns Succeeded"
    )
    parser.add_argument("--account-id", default=DEFAULT_ACCOUNT_ID, help="account id in ARNs")
    parser.add_argument("--region", default=DEFAULT_REGION, help="region in ARNs")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    args.data.mkdir(parents=True, exist_ok=True)
    server = EmulatorServer(
        args.data, job_delay=args.job_delay, account_id=args.account_id, region=args.region
    )
    url = await server.start(args.host, args.port)
    print(url, flush=True)
    print(f"vault emulator: data in {args.data.resolve()}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    asyncio.run(_serve(_parse(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
