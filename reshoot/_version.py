"""reshoot's version, for the package (``reshoot.__version__``) and the files it writes (an Alembic archive's info)."""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("reshoot")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
