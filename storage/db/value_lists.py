"""``column IN (list)`` as one bound parameter, so a statement compiles once for any list.

SQLAlchemy's expanding ``IN`` parameters re-render the statement's SQL for every
execution (one placeholder per value), which costs more than the query on the hot write
path of a manifest push. Here the list is one parameter: a JSON array read with
``json_each`` on SQLite, an array compared with ``= ANY`` on PostgreSQL. Statements using
:func:`in_list` are built per dialect; :func:`list_value` makes the parameter's value.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, String, bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY

DIALECTS = ("sqlite", "postgresql")


def in_list(column: Any, name: str, dialect: str) -> ColumnElement[bool]:
    """``column`` is one of the strings of the list parameter ``name`` (on ``dialect``)."""
    if dialect == "postgresql":
        result: ColumnElement[bool] = column == func.any(bindparam(name, type_=ARRAY(String)))
        return result
    values: Select[Any] = select(literal_column("value")).select_from(
        func.json_each(bindparam(name))
    )
    in_values: ColumnElement[bool] = column.in_(values)
    return in_values


def list_value(dialect: str, values: Sequence[str]) -> Any:
    """The value to bind for an :func:`in_list` parameter holding ``values``."""
    if dialect == "postgresql":
        return list(values)
    return json.dumps(list(values))
