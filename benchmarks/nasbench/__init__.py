"""Tabular NAS benchmark on digits: build the table, replay searches on it."""
