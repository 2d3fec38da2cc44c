"""The dialect layer's Spark SQL, checked without Spark (sqlglot parses what it generates).

The engine-against-engine tests (``test_spark_engine.py``) prove the meaning; these pin the
shapes that make it so, and that every model of the project translates.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from lakehook.transform.engines.spark import to_spark_sql
from lakehook.transform.models import load_project


def _spark(sql: str) -> exp.Expr:
    translated = to_spark_sql(sqlglot.parse_one(sql, read="duckdb"))
    return sqlglot.parse_one(translated, read="spark")


def test_qualify_over_star_does_not_leak_the_window_column() -> None:
    tree = _spark("SELECT * FROM t QUALIFY row_number() OVER (PARTITION BY a ORDER BY b) = 1")
    star = tree.expressions[0]
    assert isinstance(star, exp.Star)
    excluded = star.args.get("except_") or star.args.get("except") or []
    assert [e.name for e in excluded] == ["_w"]


def test_json_functions_have_spark_equivalents() -> None:
    sql = _spark(
        "SELECT json_valid(p) AS ok, j.x FROM t "
        "CROSS JOIN UNNEST(CAST(json_extract(t.p, '$.items') AS JSON[])) AS j(x)"
    ).sql(dialect="spark")
    assert "JSON_VALID" not in sql.upper()
    assert "TRY_PARSE_JSON" in sql.upper()
    assert "ARRAY<STRING>" in sql.upper()
    assert "ARRAY<JSON>" not in sql.upper()


def test_ordered_list_is_sorted_and_null_when_empty() -> None:
    sql = _spark("SELECT list(x ORDER BY x) FILTER (WHERE x > 1) AS l FROM t").sql("spark")
    assert "ARRAY_SORT(COLLECT_LIST(x) FILTER(WHERE x > 1))" in sql
    assert "SIZE(" in sql and "NULL" in sql


def test_every_sql_model_of_the_project_translates() -> None:
    models = [m for m in load_project().models if m.sql is not None]
    assert models
    for model in models:
        assert model.sql is not None
        for statement in sqlglot.parse(model.sql, read="duckdb"):
            assert statement is not None
            sqlglot.parse_one(to_spark_sql(statement), read="spark")
