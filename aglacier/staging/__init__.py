"""Staging: GNU tar | gpg → a spool file of ciphertext, split into hashed parts.

The one place that runs tar and gpg for a backup. Typical use::

    encryption = resolve_encryption(config.encryption, env)  # before anything starts
    estimate = estimate_source_size(source, exclude_tag)      # in a worker thread
    check_spool_space(spool_dir, estimate)
    result = await stage(source, spool_path, part_size=..., encryption=encryption,
                         exclude_tag=exclude_tag, parts=send_stream)
"""

from aglacier.staging.gpg import Encryption, resolve_encryption
from aglacier.staging.pipeline import ProgressCallback, StagingResult, stage
from aglacier.staging.spool import SPOOL_HEADROOM, SpooledPart, check_spool_space
from aglacier.staging.tar import estimate_source_size, find_gnu_tar

__all__ = [
    "SPOOL_HEADROOM",
    "Encryption",
    "ProgressCallback",
    "SpooledPart",
    "StagingResult",
    "check_spool_space",
    "estimate_source_size",
    "find_gnu_tar",
    "resolve_encryption",
    "stage",
]
