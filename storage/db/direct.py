"""Hot statements run on the unit of work's DBAPI cursor, compiled once.

SQLAlchemy spends about twice what the driver itself does on a small statement (an
execution context, bind processing, a result object and its row factory): measured on
PostgreSQL with ``psycopg``, about 205 us of CPU a statement against 70 to 107 us on the
driver's cursor. A manifest push runs four or five such statements, so on PostgreSQL
the API's CPU per push, not the database, bounded the push rate.

A :class:`DirectStatement` wraps one Core statement, the same expression the regular
path would execute. It is compiled once per dialect and set of parameter names; an
execution applies the binds' type conversions and the columns' result conversions that
SQLAlchemy would, then runs the SQL on the cursor of the connection the unit of work
holds, inside its transaction. Driver errors go through the connection's own error
handling, so callers see the same ``sqlalchemy.exc`` exceptions (``IntegrityError``,
``OperationalError`` with ``connection_invalidated`` after a disconnect, which also
invalidates the pool's older connections) as on the regular path. A statement begins the
connection's transaction when nothing has yet, as ``Connection.execute`` would, and the
engine's ``before_cursor_execute`` and ``after_cursor_execute`` listeners see it (with no
execution context; a listener cannot rewrite it).

Only statements whose every parameter is a plain bind qualify: an expanding ``IN``, a
literal-execute parameter or a column default that SQLAlchemy would compute for a
missing value is refused when the statement is first compiled, never run differently;
so is a result column whose conversion depends on the type the driver reports (a
numeric on ``psycopg``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import PendingRollbackError, StatementError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.types import ARRAY

#: Paramstyles whose parameters are a mapping (otherwise a sequence in SQL order).
_NAMED_STYLES = frozenset({"named", "pyformat"})

Converter = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Compiled:
    """One statement for one dialect and set of parameter names, ready to run."""

    sql: str
    #: What the cursor is given: the SQL, or its bytes for ``psycopg`` (which would
    #: otherwise encode it on every execution; compiled SQL is names and keywords: ASCII).
    text: str | bytes
    #: ``(name in the SQL, caller's key)`` of the parameters given at each execution.
    given: tuple[tuple[str, str], ...]
    #: Parameters with a value of their own (literals), by name in the SQL.
    constants: Mapping[str, Any]
    #: Bind conversions by name in the SQL.
    binds: tuple[tuple[str, Converter], ...]
    #: The names in SQL order for positional paramstyles (``None``: a mapping is passed).
    positions: tuple[str, ...] | None
    #: ``(column index, conversion)`` of result columns that have one.
    results: tuple[tuple[int, Converter], ...]
    returns_rows: bool


def _bind_converter(bind_type: Any, dialect: Dialect) -> Converter | None:
    """What SQLAlchemy would do to a bound value of ``bind_type`` (``None``: nothing)."""
    impl = bind_type.dialect_impl(dialect)
    # NOTE: an ARRAY's processor walks every item even when items need no conversion;
    # the driver adapts a list itself, so only a list is needed then.
    if (
        isinstance(impl, ARRAY)
        and impl.item_type.dialect_impl(dialect).bind_processor(dialect) is None
    ):
        return list
    converter: Converter | None = impl.bind_processor(dialect)
    return converter


def _refuse_defaults(compiled: Any) -> None:
    """Fail for an insert or update that leaves SQLAlchemy column defaults to compute."""
    prefetch = [*compiled.insert_prefetch, *compiled.update_prefetch]
    if prefetch:
        names = ", ".join(sorted(str(column.key) for column in prefetch))
        msg = f"direct statements need every column value given (defaults of: {names})"
        raise ValueError(msg)


def _parameters(
    compiled: Any, dialect: Dialect, keys: frozenset[str]
) -> tuple[list[tuple[str, str]], dict[str, Any], list[tuple[str, Converter]]]:
    """The given parameters, the constants and the bind conversions of ``compiled``."""
    given: list[tuple[str, str]] = []
    constants: dict[str, Any] = {}
    binds: list[tuple[str, Converter]] = []
    for bind, name in compiled.bind_names.items():
        if bind.expanding or bind.literal_execute:
            msg = f"direct statements take plain binds only, not {name!r}"
            raise ValueError(msg)
        if bind.key in keys:
            given.append((name, bind.key))
        elif bind.required or bind.callable is not None:
            msg = f"direct statement parameter {bind.key!r} not given"
            raise ValueError(msg)
        else:
            constants[name] = bind.value
        converter = _bind_converter(bind.type, dialect)
        if converter is not None:
            binds.append((name, converter))
    return given, constants, binds


def _result_conversions(statement: Any, dialect: Dialect) -> tuple[tuple[int, Converter], ...]:
    """``(index, conversion)`` of the statement's result columns that have one."""
    results: list[tuple[int, Converter]] = []
    for index, column in enumerate(statement.exported_columns):
        try:
            convert = column.type.dialect_impl(dialect).result_processor(dialect, None)
        except (TypeError, KeyError) as error:
            # NOTE: e.g. numerics on psycopg: the conversion depends on the driver's type
            msg = f"direct statements cannot convert column {column.key!r} (a {column.type})"
            raise ValueError(msg) from error
        if convert is not None:
            results.append((index, convert))
    return tuple(results)


def _compile(statement: ClauseElement, dialect: Dialect, keys: frozenset[str]) -> _Compiled:
    compiled: Any = statement.compile(dialect=dialect, column_keys=sorted(keys))
    _refuse_defaults(compiled)
    given, constants, binds = _parameters(compiled, dialect, keys)
    dml = compiled.isinsert or compiled.isupdate or compiled.isdelete
    returns_rows = not dml or bool(compiled.effective_returning)
    positions = None
    if dialect.paramstyle not in _NAMED_STYLES:
        positions = tuple(compiled.positiontup or ())
    sql: str = compiled.string
    return _Compiled(
        sql,
        sql.encode("ascii") if dialect.driver == "psycopg" else sql,
        tuple(given),
        constants,
        tuple(binds),
        positions,
        _result_conversions(statement, dialect) if returns_rows else (),
        returns_rows,
    )


def _join_transaction(connection: Connection) -> None:
    """Begin the connection's transaction if nothing has, as ``Connection.execute`` would.

    Without it, a direct statement run first on a connection that relies on autobegin
    would open the driver's transaction behind SQLAlchemy's back: ``commit()`` would not
    commit it and the pool would roll it back.
    """
    root = connection.get_transaction()
    if root is None:
        connection.begin()
    elif not root.is_active:
        msg = "this connection's transaction is inactive; roll it back before going on"
        raise PendingRollbackError(msg)


class DirectStatement:
    """A Core statement run on the unit of work's DBAPI cursor (see the module text).

    Thread-safe: compiled forms are cached per dialect and parameter names.
    """

    __slots__ = ("_compiled", "_lock", "_statement")

    def __init__(self, statement: ClauseElement) -> None:
        self._statement = statement
        self._compiled: dict[tuple[str, frozenset[str]], _Compiled] = {}
        self._lock = threading.Lock()

    def _form(self, dialect: Dialect, keys: frozenset[str]) -> _Compiled:
        key = (dialect.name, keys)
        form = self._compiled.get(key)
        if form is None:
            with self._lock:
                form = self._compiled.get(key)
                if form is None:
                    form = _compile(self._statement, dialect, keys)
                    self._compiled[key] = form
        return form

    def bound(self, dialect: Dialect, params: Mapping[str, Any]) -> tuple[str | bytes, Any]:
        """What a driver's cursor of ``dialect`` is given to run the statement with ``params``.

        The SQL (bytes for ``psycopg``) and the parameters, converted as SQLAlchemy would
        bind them; for a caller that holds a driver connection of its own
        (``storage.db.async_reads``). Pass the raw rows to :meth:`converted`.
        """
        form = self._form(dialect, frozenset(params))
        return form.text, _arguments(form, params)

    def converted(
        self, dialect: Dialect, params: Mapping[str, Any], raw: Sequence[Any]
    ) -> list[tuple[Any, ...]]:
        """Rows the driver returned for :meth:`bound`, with the result conversions applied."""
        return _converted(self._form(dialect, frozenset(params)), raw)

    def rows(self, connection: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run the statement; its rows, converted as SQLAlchemy would (none for DML)."""
        return self._run(connection, params)[0]

    def rowcount(self, connection: Connection, params: Mapping[str, Any]) -> int:
        """Run the statement; the number of rows it matched (``UPDATE``, ``DELETE``)."""
        return self._run(connection, params)[1]

    def _run(
        self, connection: Connection, params: Mapping[str, Any]
    ) -> tuple[list[tuple[Any, ...]], int]:
        form = self._form(connection.dialect, frozenset(params))
        args = _arguments(form, params)
        _join_transaction(connection)
        cursor = connection.connection.cursor()
        dispatch = connection.dispatch
        try:
            # NOTE: listeners of the engine's cursor events see these statements too
            if dispatch.before_cursor_execute:
                dispatch.before_cursor_execute(connection, cursor, form.sql, args, None, False)
            cursor.execute(form.text, args)
            raw = cursor.fetchall() if form.returns_rows else []
            count = cursor.rowcount
            if dispatch.after_cursor_execute:
                dispatch.after_cursor_execute(connection, cursor, form.sql, args, None, False)
        except connection.dialect.loaded_dbapi.Error as error:
            raise_driver_error(connection, error, form.sql, args, cursor)
        finally:
            cursor.close()
        return _converted(form, raw), count


def _arguments(form: _Compiled, params: Mapping[str, Any]) -> Any:
    """The driver's parameters: given and constant values, converted, in the style it takes."""
    values = dict(form.constants)
    for name, key in form.given:
        values[name] = params[key]
    try:
        for name, convert in form.binds:
            value = values[name]
            if value is not None:
                values[name] = convert(value)
    except Exception as error:
        # NOTE: as SQLAlchemy reports a value its bind conversion refused
        msg = f"({type(error).__module__}.{type(error).__name__}) {error}"
        raise StatementError(msg, form.sql, dict(params), error) from error
    return values if form.positions is None else [values[name] for name in form.positions]


def _converted(form: _Compiled, raw: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The driver's rows with the result conversions applied."""
    if not form.results:
        return [tuple(row) for row in raw]
    rows = []
    for row in raw:
        converted = list(row)
        for index, convert in form.results:
            converted[index] = convert(converted[index])
        rows.append(tuple(converted))
    return rows


def raise_driver_error(
    connection: Connection, error: Exception, sql: str, args: Any, cursor: Any
) -> NoReturn:
    """Raise a driver ``error`` as ``Connection.execute`` would.

    The same SQLAlchemy exception classes, and on a disconnect the connection and the
    pool's older connections invalidated.
    """
    connection._handle_dbapi_exception(error, sql, args, cursor, None)  # noqa: SLF001
    raise AssertionError("unreachable: the connection re-raises every driver error")
