"""Showback report and FinOps FOCUS export: pure row builders (rows.py, focus.py) and the CLI (cli.py)."""
