"""Benchmarks: task pipeline vs raw Celery, scaling reaction model, monthly cost model.

Each script prints a table and writes JSON to bench/results/<name>.json. `python -m bench` runs
them all; see docs/performance.md.
"""
