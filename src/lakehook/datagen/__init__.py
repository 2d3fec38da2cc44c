"""The webhook simulator: a population with known truth, and their providers' webhooks.

Public surface (stable; see ``docs/simulator.md``):

- :class:`SimulationConfig` (with :class:`NoiseRates`, :class:`DeliveryRates`,
  :class:`ActivityRates`): what to simulate, from one seed.
- :func:`generate_population` → :class:`Population`: people, their source records in
  Shopify, Stripe and HubSpot (noisy, with the truth ``person_id``), as objects or Arrow.
- :func:`generate_events` → iterator of :class:`Delivery`: the webhooks those people cause,
  exact body bytes plus unsigned headers and scheduling metadata, in delivery order.
"""

from lakehook.datagen.config import ActivityRates, DeliveryRates, NoiseRates, SimulationConfig
from lakehook.datagen.events import Delivery, generate_events
from lakehook.datagen.population import (
    NOISE_KINDS,
    SOURCE_RECORD_COLUMNS,
    Person,
    Population,
    SourceRecord,
    generate_population,
)

__all__ = [
    "NOISE_KINDS",
    "SOURCE_RECORD_COLUMNS",
    "ActivityRates",
    "Delivery",
    "DeliveryRates",
    "NoiseRates",
    "Person",
    "Population",
    "SimulationConfig",
    "SourceRecord",
    "generate_events",
    "generate_population",
]
