"""Population statistics: a hash-ranked sample whose level counts follow the change exactly."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from lakehook.resolve import statistics
from lakehook.resolve.core import _prepare_records
from lakehook.resolve.state import normalize_with_state
from lakehook.resolve.statistics import (
    PopulationStatistics,
    measure_statistics,
    sample_step,
    sample_threshold,
    update_statistics,
)
from tests.resolve.test_resolve import _simulated


def _population(records: pa.Table) -> pa.Table:
    rows, _ = normalize_with_state(_prepare_records(records), None)
    return rows


def _edited(records: pa.Table) -> pa.Table:
    """A tenth removed, a tenth with another email, the rest as it was."""
    n = records.num_rows
    keep = np.ones(n, dtype=bool)
    keep[3::10] = False
    emails = records.column("email").to_pylist()
    for i in range(5, n, 10):
        emails[i] = f"changed{i}@example.org"
    edited = records.set_column(
        records.schema.get_field_index("email"), "email", pa.array(emails, pa.string())
    )
    return edited.filter(pa.array(keep))


@pytest.fixture(scope="module")
def simulated() -> pa.Table:
    return _simulated(300)


def test_sample_step_keeps_the_expected_sample_at_its_size() -> None:
    limit = statistics.U_SAMPLE_RECORDS
    for records in (0, 1, limit, limit + 1, 5_000, 65_712, 1_000_000):
        step = sample_step(records)
        expected = records * sample_threshold(step) / 2**32
        assert expected <= limit
        if step:
            assert records * sample_threshold(step - 1) / 2**32 > limit
    assert sample_threshold(0) == 2**32 and sample_threshold(2) == 2**31


@pytest.mark.parametrize("sample_limit", [2_000, 120])
def test_updated_counts_equal_a_count_from_scratch(
    simulated: pa.Table, sample_limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 2,000: every record is sampled; 120: a sub-sample (records come and go from it)
    monkeypatch.setattr(statistics, "U_SAMPLE_RECORDS", sample_limit)
    n = simulated.num_rows
    late = np.zeros(n, dtype=bool)
    late[::7] = True
    before = _population(simulated.filter(pa.array(~late)))
    after = _population(_edited(simulated))
    kept = measure_statistics(before)
    assert kept.step == sample_step(before.num_rows)
    assert (kept.step == 0) == (sample_limit == 2_000)
    updated = update_statistics(kept, before, after)
    fresh = measure_statistics(after)
    assert updated == fresh
    assert updated.sample_pairs == updated.sample_records * (updated.sample_records - 1) // 2
    for name, levels in updated.level_counts.items():
        assert sum(levels.values()) == updated.sample_pairs, name
    # and nothing to do when nothing changed
    assert update_statistics(fresh, after, after) == fresh


def test_crossing_a_step_counts_the_new_sample(
    simulated: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statistics, "U_SAMPLE_RECORDS", 200)
    small = _population(simulated.slice(0, 150))
    large = _population(simulated)
    kept = measure_statistics(small)
    updated = update_statistics(kept, small, large)
    assert updated.step > kept.step
    assert updated == measure_statistics(large)


def test_counts_that_do_not_describe_the_rows_are_measured_again(simulated: pa.Table) -> None:
    population = _population(simulated)
    wrong = PopulationStatistics(
        records=population.num_rows,
        step=sample_step(population.num_rows),
        sample_records=3,
        sample_pairs=3,
        level_counts={"email": {0: 3}},
    )
    assert update_statistics(wrong, population, population) == measure_statistics(population)


def test_statistics_survive_json_and_give_u_per_level(simulated: pa.Table) -> None:
    kept = measure_statistics(_population(simulated))
    again = PopulationStatistics.from_json(kept.to_json())
    assert again == kept
    u = again.u_probabilities()
    assert set(u) == set(kept.level_counts)
    assert all(0.0 < p < 1.0 for levels in u.values() for p in levels.values())
    # different first names are the common case among random pairs, equal ones rare
    assert u["first_name"][0] > 0.5 > u["first_name"][4]
