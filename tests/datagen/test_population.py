"""Population: determinism, truth, noise rates and hard negatives."""

from __future__ import annotations

from collections import Counter

import pytest

from lakehook.datagen import (
    NOISE_KINDS,
    SOURCE_RECORD_COLUMNS,
    NoiseRates,
    Population,
    SimulationConfig,
    generate_population,
)
from lakehook.datagen.config import DEFAULT_SYSTEM_MIX


def test_same_seed_same_records_and_other_seed_differs() -> None:
    config = SimulationConfig(seed=3, people=200)
    first = [r.as_row() for r in generate_population(config).records]
    again = [r.as_row() for r in generate_population(config).records]
    other = [r.as_row() for r in generate_population(SimulationConfig(seed=4, people=200)).records]
    assert first == again
    assert first != other


def test_every_record_points_to_a_person_and_ids_are_unique(population: Population) -> None:
    people = {p.person_id for p in population.people}
    keys = [(r.source_system, r.source_id) for r in population.records]
    assert len(keys) == len(set(keys))
    assert {r.person_id for r in population.records} <= people
    for record in population.records:
        if record.source_system == "stripe":
            assert record.source_id.startswith("cus_")
        elif record.record_kind == "guest":
            assert record.source_id == f"guest:{record.email}"
            assert record.first_name is record.phone is record.address1 is None
        else:
            assert record.source_id.isdigit()
        assert set(record.noise_kinds) <= set(NOISE_KINDS)


@pytest.fixture(scope="module")
def crowd() -> Population:
    """Enough people for rates to show (default noise and overlaps)."""
    return generate_population(SimulationConfig(seed=5, people=3_000))


def test_people_use_one_to_three_systems_with_the_configured_overlaps(crowd: Population) -> None:
    combos = Counter("+".join(p.systems) for p in crowd.people)
    for combo, share in DEFAULT_SYSTEM_MIX.items():
        assert abs(combos[combo] / len(crowd.people) - share) < 0.03, combo


def test_noise_rates_follow_the_config() -> None:
    noisy = SimulationConfig(
        seed=6, people=3_000, noise=NoiseRates(plus_address=0.3, email_typo=0.2, email_case=0.0)
    )
    records = [r for r in generate_population(noisy).records if r.email is not None]
    kinds = Counter(k for r in records for k in r.noise_kinds)
    assert abs(kinds["plus_address"] / len(records) - 0.3) < 0.04
    assert abs(kinds["email_typo"] / len(records) - 0.2) < 0.04
    assert kinds["email_case"] == 0
    for record in records:
        if "plus_address" in record.noise_kinds and "email_typo" not in record.noise_kinds:
            assert "+" in record.email.split("@")[0]  # type: ignore[union-attr]


def test_hard_negatives_are_different_people_who_share_values(crowd: Population) -> None:
    population = crowd
    by_name: dict[tuple[str, str], set[str]] = {}
    for person in population.people:
        by_name.setdefault((person.first_name, person.last_name), set()).add(person.person_id)
    assert any(len(ids) > 1 for ids in by_name.values())
    shared_phone = [p for p in population.people if "shared_company_phone" in p.hard_negatives]
    assert shared_phone and all(p.company and p.phone == p.company.phone for p in shared_phone)
    households = Counter(id(p.address) for p in population.people)
    assert any(n > 1 for n in households.values())


def test_source_records_as_arrow_carry_the_truth(population: Population) -> None:
    table = population.source_records()
    assert table.column_names == list(SOURCE_RECORD_COLUMNS)
    assert table.num_rows == len(population.records)
    assert table.column("person_id").to_pylist() == [r.person_id for r in population.records]
    assert next(population.iter_source_rows()) == population.records[0].as_row()


def test_noise_kinds_describe_what_the_record_shows(crowd: Population) -> None:
    population = crowd
    people = {p.person_id: p for p in population.people}
    for r in population.records:
        kinds = set(r.noise_kinds)
        person = people[r.person_id]
        if r.record_kind == "guest":
            assert r.phone is None and r.first_name is None
            continue
        assert ("missing_phone" in kinds) == (r.phone is None)
        assert ("missing_name" in kinds) == (r.first_name is None)
        if r.phone is not None:
            e164 = r.phone.startswith("+") and r.phone[1:].isdigit()
            assert e164 != ("phone_format" in kinds), r
        if "nickname" in kinds:
            assert r.first_name != person.first_name
        elif r.first_name is not None:
            assert r.first_name == person.first_name
        if r.email is not None:
            assert ("email_whitespace" in kinds) == (r.email != r.email.strip())
            assert ("email_case" in kinds) == (r.email != r.email.lower())
            if "work_email" in kinds and not kinds & {"email_typo", "plus_address"}:
                assert r.email.strip().lower() == person.work_email
        if r.source_system != "hubspot":
            assert ("missing_address" in kinds) == (r.address1 is None)
