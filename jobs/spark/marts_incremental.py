"""Marts layer, incremental by default: dashboard-ready tables (on Spark).

A thin spark-submit entry point; the work is lakehook's batch runner with the Spark engine::

    spark-submit --master local[2] --jars "$(lakehook jars path spark --separator ,)" \
        jobs/spark/marts_incremental.py --mode incremental [--table T] [--start-date YYYY-MM-DD]

Catalog, warehouse and secrets come from the LAKEHOOK_* environment (see docs/scale-out.md).
"""

import sys

from lakehook.transform.engines.spark import run_batch_job

if __name__ == "__main__":
    sys.exit(run_batch_job("marts", default_mode="incremental"))
