"""The raw loader: event log → ``raw.*`` exactly once, offsets in the Iceberg snapshots.

- :class:`RawLoader` runs the micro-batch loop (``lakehook stream``).
- :func:`committed_offsets` tells, per (stream, partition), the next offset to load as
  committed in raw: what the event log may prune below.
"""

from __future__ import annotations

from lakehook.stream.loader import LoaderError, RawLoader, StreamReport
from lakehook.stream.offsets import (
    OFFSET_PREFIX,
    committed_offsets,
    offset_properties,
    parse_offset_properties,
    table_offsets,
)

__all__ = [
    "OFFSET_PREFIX",
    "LoaderError",
    "RawLoader",
    "StreamReport",
    "committed_offsets",
    "offset_properties",
    "parse_offset_properties",
    "table_offsets",
]
