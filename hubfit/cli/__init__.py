"""The command line: thin click commands over the Python API (``hubfit``, ``hf-hubfit``)."""

from hubfit.cli.commands import main

__all__ = ["main"]
