"""The analytics layer reproduces the simulator's truth exactly (money, counts, MRR, deals)."""

from __future__ import annotations

from pyiceberg.catalog import Catalog

from lakehook.datagen import SimulationConfig, generate_events, generate_population
from lakehook.datagen.truth import TruthBuilder
from lakehook.settings import Settings
from tests.transform.lakefixtures import DeliveryLoader, run_batch
from tests.transform.truthcheck import lake_figures, truth_figures


def test_analytics_equal_the_simulator_truth(settings: Settings, catalog: Catalog) -> None:
    config = SimulationConfig(seed=21, people=120, events=4000)
    population = generate_population(config)
    deliveries = list(generate_events(config, population))
    truth = TruthBuilder(population).observe_all(deliveries).result()
    DeliveryLoader(catalog).load(deliveries)
    run_batch(settings, catalog, mode="full")
    lake = lake_figures(catalog)
    expected = truth_figures(truth)
    assert expected["revenue_daily"] and expected["mrr_monthly"] and expected["deals_by_stage"]
    for figure, rows in expected.items():
        assert lake[figure] == rows, figure
