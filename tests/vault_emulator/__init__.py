"""A strict emulator of the Amazon Glacier vault REST API (2012-06-01) for aglacier's tests.

It imports nothing from ``aglacier``: it is the independent check of aglacier's tree-hash and
upload code. See docs/vault-emulator.md. In-process use::

    with VaultEmulator(tmp_path / "glacier") as emu:
        client = boto3.client("glacier", endpoint_url=emu.endpoint_url, ...)

By hand: ``python -m tests.vault_emulator --port 0 --data DIR``.
"""

from .errors import ERROR_STATUS, GlacierError
from .faults import OPERATIONS, CounterSnapshot, Faults
from .handle import VaultEmulator
from .server import DEFAULT_ACCOUNT_ID, DEFAULT_REGION, EmulatorServer
from .treehash import MIB, TreeHasher, combine_hex, is_tree_hash_aligned, tree_hash

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_REGION",
    "ERROR_STATUS",
    "MIB",
    "OPERATIONS",
    "CounterSnapshot",
    "EmulatorServer",
    "Faults",
    "GlacierError",
    "TreeHasher",
    "VaultEmulator",
    "combine_hex",
    "is_tree_hash_aligned",
    "tree_hash",
]
