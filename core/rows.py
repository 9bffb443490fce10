"""Model instances from plain SQL that reads several tables in one statement, for the few hot paths where
building the ORM's statement took longer than running it (annotator.services, annotator.selectors).

`Columns(Model, "alias")` names every concrete column of the model's table under that alias, in the order the
model lists its fields; `Columns.load(row, start)` turns those values of a fetched row into a model instance,
through the same converters the ORM applies (JSON decoded, SQLite's datetimes and booleans), as if the ORM had
read it. Its select list and converters are worked out once per database vendor, on first use.
"""

from collections.abc import Callable, Sequence
from typing import Any

from django.db import connection, models


class Columns:
    def __init__(self, model: type[models.Model], alias: str) -> None:
        self.model, self.alias = model, alias
        self.fields = model._meta.concrete_fields
        self.attnames = [field.attname for field in self.fields]
        self.cols = [field.get_col(alias) for field in self.fields]
        self._built: dict[str, tuple[str, list[list[Callable]]]] = {}  # by database vendor

    def __len__(self) -> int:
        return len(self.fields)

    def _for_vendor(self) -> tuple[str, list[list[Callable]]]:
        """The select list and each field's converters on this database, worked out on first use."""
        built = self._built.get(connection.vendor)
        if built is None:
            quote = connection.ops.quote_name
            built = self._built[connection.vendor] = (
                ", ".join(f"{self.alias}.{quote(field.column)}" for field in self.fields),
                [
                    connection.ops.get_db_converters(col) + field.get_db_converters(connection)
                    for col, field in zip(self.cols, self.fields, strict=True)
                ],
            )
        return built

    @property
    def sql(self) -> str:
        """The select list: alias.column for each field (names from the model's metadata, nothing from a request)."""
        return self._for_vendor()[0]

    def load(self, row: Sequence[Any], start: int = 0) -> models.Model:
        """The instance whose values are `row[start:start + len(self)]`."""
        values = list(row[start : start + len(self)])
        for index, (converters, col) in enumerate(zip(self._for_vendor()[1], self.cols, strict=True)):
            for convert in converters:
                values[index] = convert(values[index], col, connection)
        return self.model.from_db(connection.alias, self.attnames, values)


def select_list(tables: Sequence[Columns]) -> str:
    """The select list of several tables' columns, in turn."""
    return ", ".join(table.sql for table in tables)


def load_all(tables: Sequence[Columns], row: Sequence[Any]) -> list[models.Model]:
    """One instance per table, from a row fetched with `select_list(tables)`."""
    instances, start = [], 0
    for table in tables:
        instances.append(table.load(row, start))
        start += len(table)
    return instances
