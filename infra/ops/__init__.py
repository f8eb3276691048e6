"""Day-2 operations on a deployed stack: `python -m infra.ops --help`."""
