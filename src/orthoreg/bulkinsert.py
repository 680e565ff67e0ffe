"""Fast inserts of many new rows: one home for the bulk writes of an import (records, their history rows, audit
entries, planned assessments, FHIR links).

Django's bulk_create spends most of its time compiling the INSERT: for every value of every row it asks whether
the value is an expression, calls the field's pre_save and get_db_prep_save and builds a placeholder (an import
of 6,000 resources: 300,000 values, two thirds of its database time in Python). Here each model gets a column
plan once (the fields bulk_create would write, in its order), and a value is prepared by its field only when the
field could change it: a str in a text column, an int in an integer column, a bool in a boolean column and None
anywhere are what get_db_prep_save returns them as, so they go to the database as they are; any other value (dates,
datetimes, decimals, JSON, UUIDs, ...) goes through the field's own get_db_prep_save, exactly as bulk_create does.
The SQL is the backend's own (ops.bulk_insert_sql, ops.return_insert_columns), in batches of ops.bulk_batch_size
rows: the rows stored are those bulk_create stores (tests/test_bulkinsert.py compares them on every model it is
used on, on SQLite and PostgreSQL), and new primary keys come back with RETURNING as bulk_create's do.

`insert_objects(model, objs)`: bulk_create(objs) for new model instances (their pk set on return).
`insert_rows(model, attnames, rows)`: plain tuples of attribute values, no model instances (history rows).
`history_insert(model, objs)`: django-simple-history's bulk_history_create as tuples.
`prepare_values(model, attname, values)`: one column's values as the database is sent them (hand-written SQL).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections, models, router, transaction
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models import AutoField
from django.db.models.constants import OnConflict
from django.db.models.fields import AutoFieldMixin
from django.utils import timezone

# Field classes whose get_db_prep_save returns a value of this exact type unchanged (on every backend): the value
# needs no preparing. A subclass that overrides get_prep_value/get_db_prep_value is not in the table (its own
# class is looked up, not its bases), so it is prepared by its field.
_AS_IS: dict[type, tuple[type, ...]] = {
    models.CharField: (str,), models.TextField: (str,), models.SlugField: (str,), models.EmailField: (str,),
    models.URLField: (str,),
    models.IntegerField: (int,), models.BigIntegerField: (int,), models.SmallIntegerField: (int,),
    models.PositiveIntegerField: (int,), models.PositiveSmallIntegerField: (int,),
    models.PositiveBigIntegerField: (int,), models.AutoField: (int,), models.BigAutoField: (int,),
    models.SmallAutoField: (int,),
    models.BooleanField: (bool,), models.FloatField: (float,),
}


def _as_is_types(field: models.Field) -> tuple[type, ...]:
    if isinstance(field, models.ForeignKey):
        target = field.target_field
        return _as_is_types(target) if type(target) in _AS_IS else ()
    return _AS_IS.get(type(field), ())


@dataclass(frozen=True)
class _Column:
    field: Any  # a models.Field
    attname: str
    types: tuple[type, ...]  # values of these exact types (and None) go to the database as they are
    plain_pre_save: bool  # the field's pre_save only reads the attribute (no auto_now, ...)


@dataclass(frozen=True)
class _Plan:
    table: str
    columns: tuple[_Column, ...]  # every column bulk_create writes for a row with its pk set
    pk: Any  # a models.Field
    pk_is_auto: bool


_PLANS: dict[type, _Plan] = {}


def _plan(model: type[models.Model]) -> _Plan:
    plan = _PLANS.get(model)
    if plan is None:
        opts = model._meta
        columns = []
        field: Any
        for field in opts.concrete_fields:
            if field.generated or getattr(field, "get_placeholder", None) is not None or field.has_db_default():
                raise TypeError(f"{model.__name__}.{field.name}: not supported by bulkinsert (use bulk_create)")
            plain = type(field).pre_save is models.Field.pre_save or (
                isinstance(field, models.DateField) and not (field.auto_now or field.auto_now_add))  # type: ignore[attr-defined]
            columns.append(_Column(field, field.attname, _as_is_types(field), plain))
        plan = _PLANS[model] = _Plan(opts.db_table, tuple(columns), opts.pk, isinstance(opts.pk, AutoField))
    return plan


def _preparer(column: _Column, connection) -> tuple[tuple[type, ...], Callable[[Any], Any]]:
    """(the types whose values go as they are, None too; how any other value is prepared)."""
    field, types = column.field, column.types
    # A date in a DateField, an aware datetime in a DateTimeField, a dict or list in a JSONField: get_db_prep_save
    # returns them as they are up to its last step, the backend's adapter, which is called directly.
    adapt: Callable[[Any], Any] | None = None
    target = field.target_field if isinstance(field, models.ForeignKey) else field
    ops, base = connection.ops, BaseDatabaseOperations
    if types == (int,) and isinstance(target, AutoFieldMixin):
        # An auto key (or a foreign key to one): its field's last step is the backend's validate_autopk_value
        if type(ops).validate_autopk_value is not base.validate_autopk_value:
            types = ()  # (a backend that checks them: prepared by the field)
    elif types == (int,) and type(ops).adapt_integerfield_value is not base.adapt_integerfield_value:
        # PostgreSQL: an int goes to psycopg typed by its column (the field's last step, called directly)
        adapt_int, internal = ops.adapt_integerfield_value, target.get_internal_type()
        types = ()
        adapt = lambda value: adapt_int(value, internal) if type(value) is int else None  # noqa: E731
    elif types == (str,):
        # A str subclass (a TextChoices member): the field's to_python returns any str as it is, so does the field
        adapt = lambda value: value if isinstance(value, str) else None  # noqa: E731
    elif type(field) is models.DateField:
        adapt_date = connection.ops.adapt_datefield_value
        adapt = lambda value: adapt_date(value) if type(value) is dt.date else None  # noqa: E731
    elif type(field) is models.DateTimeField:
        adapt_datetime = connection.ops.adapt_datetimefield_value
        if _utc_as_text(connection):
            # SQLite's adapter makes an aware datetime naive in the connection's time zone (UTC) and stores its
            # str(): for one already in datetime.timezone.utc, astimezone returns it as it is, so the same text
            # is str() of it without its tzinfo (tests/core/test_bulkinsert.py compares the two)
            adapt = lambda value: (str(value.replace(tzinfo=None)) if type(value) is dt.datetime  # noqa: E731
                                   and value.tzinfo is dt.UTC else
                                   adapt_datetime(value) if type(value) is dt.datetime
                                   and value.utcoffset() is not None else None)
        else:
            adapt = lambda value: (adapt_datetime(value) if type(value) is dt.datetime  # noqa: E731
                                   and value.utcoffset() is not None else None)
    elif type(field) is models.JSONField and type(field).get_prep_value is models.Field.get_prep_value:
        adapt_json, encoder = connection.ops.adapt_json_value, field.encoder
        adapt = lambda value: adapt_json(value, encoder) if type(value) in (dict, list) else None  # noqa: E731

    def prepare(value: Any) -> Any:
        if value is None or type(value) in types:
            return value
        if adapt is not None and (adapted := adapt(value)) is not None:
            return adapted
        if hasattr(value, "resolve_expression"):
            raise TypeError(f"{field}: an expression ({value!r}) is not supported by bulkinsert (use bulk_create)")
        return field.get_db_prep_save(value, connection=connection)

    return (type(None), *types), prepare


def _utc_as_text(connection) -> bool:
    """Whether the backend stores a datetime as SQLite's does (its str() once naive in the connection's time
    zone) and that time zone is UTC."""
    if connection.vendor != "sqlite":
        return False
    from django.db.backends.sqlite3.base import DatabaseWrapper as SQLite

    return (type(connection.ops).adapt_datetimefield_value is SQLite.ops_class.adapt_datetimefield_value
            and connection.timezone is dt.UTC)


def _execute(model: type[models.Model], columns: Sequence[_Column], rows: list[list], *, returning: bool,
             using: str, ignore_conflicts: bool = False) -> list:
    """INSERT these rows (values not prepared yet), in batches; the new primary keys when returning."""
    connection = connections[using]
    plan = _plan(model)
    qn = connection.ops.quote_name
    fields = [c.field for c in columns]
    plans = [_preparer(c, connection) for c in columns]
    on_conflict = OnConflict.IGNORE if ignore_conflicts else None
    head = (f"{connection.ops.insert_statement(on_conflict=on_conflict)} {qn(plan.table)} "
            f"({', '.join(qn(f.column) for f in fields)}) ")
    tail, tail_params = connection.ops.on_conflict_suffix_sql(fields, on_conflict, [], []) or "", ()
    if returning:
        if ignore_conflicts:
            raise NotImplementedError("the keys of rows inserted with ignore_conflicts are not returned")
        tail, tail_params = connection.ops.return_insert_columns([plan.pk])
    batch = max(connection.ops.bulk_batch_size(fields, rows), 1)
    row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
    keys: list = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch):
            chunk = rows[start:start + batch]
            params: list = []
            for row in chunk:  # (the common case, a value that goes as it is, without a call)
                params.extend([value if type(value) in as_is else prepare(value)
                               for (as_is, prepare), value in zip(plans, row)])
            sql = head + "VALUES " + ", ".join([row_sql] * len(chunk)) + (" " + tail if tail else "")
            cursor.execute(sql, (*params, *tail_params))
            if returning:
                returned = connection.ops.fetch_returned_insert_rows(cursor)  # type: ignore[attr-defined]
                if len(returned) != len(chunk):
                    raise RuntimeError(f"{model.__name__}: {len(returned)} keys returned for {len(chunk)} rows")
                keys.extend(r[0] for r in returned)
    return keys


def _returns_rows(using: str) -> bool:
    features = connections[using].features
    return features.can_return_rows_from_bulk_insert and features.can_return_columns_from_insert


def insert_objects(model: type[models.Model], objs: Sequence[Any], *, using: str | None = None) -> list:
    """bulk_create(objs) for new instances of model: the same rows stored, their pks set (RETURNING) and their
    state saved. Falls back to bulk_create where the backend cannot return the new keys of many rows."""
    objs = list(objs)
    if not objs:
        return objs
    using = using or router.db_for_write(model)
    if not _returns_rows(using):
        return model._default_manager.using(using).bulk_create(objs)
    plan = _plan(model)
    for obj in objs:  # what bulk_create does first (a default pk such as a UUID; related objects' keys)
        if not obj._is_pk_set():
            obj.pk = plan.pk.get_pk_value_on_save(obj)
        obj._prepare_related_fields_for_save(operation_name="bulk_create")
    with_pk = [o for o in objs if o._is_pk_set()]
    without_pk = [o for o in objs if not o._is_pk_set()]
    with transaction.atomic(using=using, savepoint=False):
        for group, columns in ((with_pk, plan.columns),
                               (without_pk, tuple(c for c in plan.columns if not isinstance(c.field, AutoField)))):
            if not group:
                continue
            rows = [[getattr(obj, c.attname) if c.plain_pre_save else c.field.pre_save(obj, True)  # type: ignore[arg-type]
                     for c in columns] for obj in group]
            keys = _execute(model, columns, rows, returning=group is without_pk, using=using)
            for obj, key in zip(group, keys):
                setattr(obj, plan.pk.attname, key)
            for obj in group:
                obj._state.adding = False
                obj._state.db = using
    return objs


def insert_rows(model: type[models.Model], attnames: Sequence[str], rows: Iterable[Sequence], *,
                using: str | None = None, returning: bool = False, ignore_conflicts: bool = False) -> list:
    """Insert plain rows: tuples of attribute values in the order of attnames (the rest of the model's columns
    must be nullable or given). No model instances are built, no pre_save is called: each value is stored as
    bulk_create would store it on an instance holding it (ignore_conflicts: a row a unique constraint refuses is
    left out, as bulk_create(ignore_conflicts=True) does). Returns the new primary keys when returning."""
    values = [list(r) for r in rows]
    if not values:
        return []
    using = using or router.db_for_write(model)
    by_attname = {c.attname: c for c in _plan(model).columns}
    columns = tuple(by_attname[a] for a in attnames)
    if returning and not _returns_rows(using):
        raise NotImplementedError("this database cannot return the keys of a bulk insert")
    with transaction.atomic(using=using, savepoint=False):
        return _execute(model, columns, values, returning=returning, using=using, ignore_conflicts=ignore_conflicts)


def prepare_values(model: type[models.Model], attname: str, values: Iterable, *, using: str | None = None) -> list:
    """Values of one of model's columns as bulk_create would send them to the database (each its field's
    get_db_prep_save, through the same fast paths as the inserts here): for SQL written out by hand, e.g. the
    CASE of an UPDATE that sets each row its own value."""
    connection = connections[using or router.db_for_write(model)]
    column = next(c for c in _plan(model).columns if c.attname == attname)
    as_is, prepare = _preparer(column, connection)
    return [value if type(value) in as_is else prepare(value) for value in values]


def history_insert(model: type[models.Model], objs: Sequence[models.Model], *, update: bool = False,
                   default_user=None, default_change_reason: str | None = "", using: str | None = None) -> int:
    """django-simple-history's bulk_history_create(objs) for model's history, as plain rows: the same historical
    rows (history_date, history_user, history_change_reason, history_type "+" or "~" with update, the tracked
    fields' values), without building a historical instance per row. default_change_reason as bulk_history_create's
    (bulk_create_with_history passes None). Returns the number of rows written."""
    from django.conf import settings
    from simple_history.utils import get_change_reason_from_object, get_history_manager_for_model

    if not getattr(settings, "SIMPLE_HISTORY_ENABLED", True) or not objs:
        return 0
    historical = get_history_manager_for_model(model).model
    tracked = [f.attname for f in historical.tracked_fields]
    history_type = "~" if update else "+"
    relation = hasattr(historical, "history_relation")
    attnames = ["history_date", "history_user_id", "history_change_reason", "history_type", *tracked]
    if relation:
        attnames.append("history_relation_id")
    rows = []
    for obj in objs:
        user = getattr(obj, "_history_user", default_user or historical.get_default_history_user(obj))
        row = [getattr(obj, "_history_date", timezone.now()), user.pk if user is not None else None,
               get_change_reason_from_object(obj) or default_change_reason, history_type, *[getattr(obj, a) for a in tracked]]
        if relation:
            row.append(obj.pk)
        rows.append(row)
    insert_rows(historical, attnames, rows, using=using)
    return len(rows)
