"""Small simulations shared by the datagen tests (built once per session: they are pure)."""

from __future__ import annotations

import pytest

from lakehook.datagen import (
    Delivery,
    Population,
    SimulationConfig,
    generate_events,
    generate_population,
)

SMALL = SimulationConfig(seed=11, people=300, events=6_000)


@pytest.fixture(scope="session")
def population() -> Population:
    return generate_population(SMALL)


@pytest.fixture(scope="session")
def deliveries(population: Population) -> list[Delivery]:
    return list(generate_events(SMALL, population))
