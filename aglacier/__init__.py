"""aglacier: encrypted, resumable backups to Amazon Glacier."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("aglacier")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
