"""Semantic layer on Spark: entity resolution over every source customer record (backfill).

A thin spark-submit entry point; the work is lakehook's batch runner with the Spark engine,
whose semantic model resolves on the cluster (``lakehook.resolve.spark``: normalisation,
statistics, blocking and scoring as Spark jobs; clustering and stable ids on the driver)::

    spark-submit --master local[2] --jars "$(lakehook jars path spark --separator ,)" \
        jobs/spark/entity_backfill.py --mode full [--table T] [--start-date YYYY-MM-DD]

Catalog, warehouse and secrets come from the LAKEHOOK_* environment (see docs/scale-out.md).
"""

import sys

from lakehook.transform.engines.spark import run_batch_job

if __name__ == "__main__":
    sys.exit(run_batch_job("semantic", default_mode="full"))
