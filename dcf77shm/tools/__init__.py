"""Diagnostics around the pipeline: record, monitor, calibrate."""
