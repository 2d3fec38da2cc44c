"""Fixtures of the transform tests: a fresh lake (catalog + warehouse) per test."""

from __future__ import annotations

import pytest
from pyiceberg.catalog import Catalog

from lakehook.lake.catalog import open_catalog
from lakehook.settings import Settings
from tests.transform.lakefixtures import RawWriter


@pytest.fixture
def catalog(settings: Settings) -> Catalog:
    return open_catalog(settings)


@pytest.fixture
def raw(catalog: Catalog) -> RawWriter:
    return RawWriter(catalog)
