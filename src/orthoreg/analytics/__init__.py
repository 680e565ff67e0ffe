"""Analytics: cohort selection, outcome metrics and survival, the read side of the registry.

filters.py (what a cohort may be filtered on, one parser for page, API and CLI) -> cohorts.py (selection and the
per-report cohort tables) -> metrics.py (aggregates in the database) -> summaries.py and stats.py (arithmetic on
counted cells, intervals, Kaplan-Meier) -> selectors.py (the report document). definitions.py says what every number
means; the reports app draws and prints it.
"""
