"""``aglacier verify``: retrieve an archive and check every checksum, decrypting nothing."""

from __future__ import annotations

import argparse

from aglacier.cli.common import Context, SubParsers, add_command
from aglacier.cli.resources import add_output_options
from aglacier.cli.restore_cmd import add_retrieval_options, retrieve_from, run_retrieval
from aglacier.cli.runner import Session
from aglacier.errors import ExitCode
from aglacier.restore import Work, verify_archive
from aglacier.state import Archive

DESCRIPTION = """\
Check that an archive can still be restored, without decrypting it: retrieve it like
`aglacier restore` does (same tracking: a recorded retrieval is reused, never paid for
twice; default tier bulk, the cheapest), download it, and check every part against the
destination's checksum and the checksums recorded at upload, and the whole archive's size,
SHA256 and tree hash against the catalog. No key or passphrase is needed.

ARCHIVE is a catalog id from `aglacier list`, an archive id, or a SOURCE folder (its
newest archive, or with --date the newest on or before that day).

Exit status: 0 intact, 12 a checksum did not match, 14 the retrieval is not ready yet
(run the same command again later, or add --wait); see docs/verify.md.
"""


def register(sub: SubParsers, common: argparse.ArgumentParser) -> None:
    parser = add_command(
        sub, common, "verify", run, help="check an archive's checksums", description=DESCRIPTION
    )
    parser.add_argument("target", metavar="ARCHIVE|SOURCE")
    add_retrieval_options(parser, default_tier="bulk")
    add_output_options(parser)


def run(ctx: Context) -> ExitCode:
    retrieve = retrieve_from(ctx.args)

    async def body(session: Session, work: Work, archive: Archive) -> None:
        await verify_archive(work, archive, retrieve)

    return run_retrieval(ctx, body)
