"""Benchmarks of the approval path: `python -m bench [names] [--quick]`.

    click_to_resume   signed click -> waiting gate task returns, against Prefect's pause
    ack_load          the `approvals bot` process acking clicks at 50-200 per second
    waiting_gates     10-1,000 waiting gates in one process: memory, threads, idle CPU, wake-up
    fan_out           department-review with 5-50 departments, SQLite vs PostgreSQL server
    memory            Redis bytes per pending and per closed request

Each writes `bench/results/<name>.json` and `<name>.png`; see BENCHMARKS.md.
"""

import os

# Prefect reads these when it is first imported: importing any benchmark module sets them first.
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
