"""The DuckDB engine parses a JSON column once per row for all the fields a model reads."""

from __future__ import annotations

import json

import pyarrow as pa

from lakehook.settings import Settings
from lakehook.transform.engines.duckdb import DuckDBEngine, parse_json_once

_FIELDS_SQL = """
SELECT
  k,
  json_extract_string(doc, '$.id')              AS id,
  json_extract_string(doc, '$.name')            AS name,
  json_extract_string(doc, '$.address.city')    AS city,
  json_extract_string(doc, '$.address')         AS address,
  json_extract_string(doc, '$.missing')         AS missing,
  json_extract_string(doc, '$.id') || '-x'      AS id_again,
  json_extract_string(other, '$.id')            AS other_id
FROM docs
"""


def test_a_column_read_at_three_or_more_paths_is_parsed_once() -> None:
    rewritten = parse_json_once(_FIELDS_SQL)
    listed = "['$.id', '$.name', '$.address.city', '$.address', '$.missing']"
    assert f"json_extract_string(doc, {listed})[1]" in rewritten
    assert f"json_extract_string(doc, {listed})[3]" in rewritten
    assert rewritten.count(f"json_extract_string(doc, {listed})[1]") == 2
    # a column read at fewer paths, and calls on expressions, stay as written
    assert "json_extract_string(other, '$.id')" in rewritten
    guarded = "SELECT json_extract_string(CASE WHEN json_valid(p) THEN p END, '$.a') FROM t"
    assert parse_json_once(guarded) == guarded


def test_the_engine_gives_the_same_values_as_one_parse_per_field(settings: Settings) -> None:
    docs = [
        {"id": "1", "name": "Ann", "address": {"city": "Oslo"}},
        {"id": 2, "name": None, "address": None},
        {"name": "no id", "address": {"city": None, "zip": "0150"}},
    ]
    rows = pa.table(
        {
            "k": [1, 2, 3, 4],
            "doc": [json.dumps(d) for d in docs] + [None],
            "other": ['{"id": "o1"}', None, "{}", '{"id": 7}'],
        }
    )
    with DuckDBEngine(settings) as engine:
        engine.register("docs", rows)
        assert engine.translate(_FIELDS_SQL) == parse_json_once(_FIELDS_SQL)
        batched = engine.query(_FIELDS_SQL).sort_by("k").to_pylist()
        one_by_one = engine._connection.sql(_FIELDS_SQL).to_arrow_table().sort_by("k").to_pylist()
    assert batched == one_by_one
    assert [row["id"] for row in batched] == ["1", "2", None, None]
    assert [row["city"] for row in batched] == ["Oslo", None, None, None]
    assert batched[0]["address"] == '{"city":"Oslo"}'
