"""Date arithmetic the ORM lacks, written once for SQLite and PostgreSQL (the SQL standard form elsewhere)."""

from __future__ import annotations

from django.db.models import Func, IntegerField


class _TwoDates(Func):
    output_field = IntegerField()
    arity = 2

    def _compiled(self, compiler):
        first, first_params = compiler.compile(self.source_expressions[0])
        second, second_params = compiler.compile(self.source_expressions[1])
        return first, tuple(first_params), second, tuple(second_params)


class DaysBetween(_TwoDates):
    """Whole days from `start` to `end` (end - start) of two dates; NULL when either is NULL."""

    def __init__(self, end, start, **extra):
        super().__init__(end, start, **extra)

    def as_sql(self, compiler, connection, **extra):
        end, end_params, start, start_params = self._compiled(compiler)
        if connection.vendor == "sqlite":
            return (f"CAST(julianday({end}) - julianday({start}) AS INTEGER)", (*end_params, *start_params))
        return f"(CAST({end} AS date) - CAST({start} AS date))", (*end_params, *start_params)


class AgeYears(_TwoDates):
    """Completed years of age on a day: AgeYears(birth_date, on)."""

    def __init__(self, birth, on, **extra):
        super().__init__(birth, on, **extra)

    def as_sql(self, compiler, connection, **extra):
        birth, birth_params, on, on_params = self._compiled(compiler)
        if connection.vendor == "sqlite":
            sql = (f"(CAST(strftime('%%Y', {on}) AS INTEGER) - CAST(strftime('%%Y', {birth}) AS INTEGER)"
                   f" - (strftime('%%m-%%d', {on}) < strftime('%%m-%%d', {birth})))")
            return sql, (*on_params, *birth_params, *on_params, *birth_params)
        return (f"CAST(EXTRACT(YEAR FROM age(CAST({on} AS date), CAST({birth} AS date))) AS integer)",
                (*on_params, *birth_params))
