"""Analysts' read-only SQL on the live store: vet a statement, then run it bounded.

Vetting uses DuckDB's own parser, never a regex: ``duckdb.extract_statements`` gives the
statement type (exactly one ``SELECT``; ``WITH``, ``DESCRIBE``, ``SHOW`` and ``SUMMARIZE``
parse as one), and ``json_serialize_sql`` gives the tree, walked for what a SELECT could
still reach: table functions outside a small allowlist (``read_csv``, ``read_parquet``,
``glob``, ``query``... read files or run other SQL), tables that are not in the catalog (a
quoted file name is a replacement scan that reads the file), other catalogs (ATTACHed
files), and the ``tokens`` table. The query then runs on its own cursor in a
``READ ONLY`` transaction, with Python replacement scans off, at most ``max_rows`` + 1 rows
fetched (a LIMIT over the statement) and an interrupt after ``timeout_s``.

>>> vet_statement("SELECT 1; SELECT 2")
Traceback (most recent call last):
...
core.errors.DecodeError: query: send one statement per request, got 2
>>> vet_statement("PRAGMA version")
Traceback (most recent call last):
...
core.errors.ForbiddenError: PRAGMA statements are not allowed: only SELECT, WITH and DESCRIBE
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from core.errors import DecodeError, ForbiddenError, OpsloopError
from core.store import Store

__all__ = ["QueryResult", "QueryTimeoutError", "run_readonly", "vet_statement"]

#: Table functions a SELECT may call: generators and the catalog's own listings.
ALLOWED_TABLE_FUNCTIONS = frozenset(
    {"range", "generate_series", "unnest", "duckdb_tables", "duckdb_views", "duckdb_columns"}
)
#: Scalar functions that reach outside the database.
FORBIDDEN_FUNCTIONS = frozenset({"getenv", "read_text", "read_blob", "glob"})
#: Tables no analyst reads (token hashes).
HIDDEN_TABLES = frozenset({"tokens"})
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class QueryTimeoutError(OpsloopError):
    """The query ran past its time limit and was interrupted."""


@dataclass(frozen=True, slots=True)
class QueryResult:
    """The rows of a query (at most the row limit) and whether more existed."""

    table: pa.Table
    truncated: bool


def vet_statement(sql: str) -> str:
    """Return the one statement of ``sql`` if its type is SELECT; raise naming why not.

    ``DecodeError`` (400) for text that does not parse or holds several statements,
    ``ForbiddenError`` (403) for any other statement type.
    """
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise DecodeError("query", str(exc).splitlines()[0]) from exc
    if len(statements) != 1:
        raise DecodeError("query", f"send one statement per request, got {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise ForbiddenError(f"{kind.name} statements are not allowed: only SELECT, WITH and DESCRIBE")
    return str(statements[0].query).strip().rstrip(";")


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    if isinstance(tree, dict):
        yield tree
        for value in tree.values():
            yield from _nodes(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from _nodes(item)


def vet_tree(cur: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Raise ``ForbiddenError`` when the statement's tree reads files, other SQL or hidden tables."""
    row = cur.execute("SELECT json_serialize_sql(?::VARCHAR)", [sql]).fetchone()
    tree = json.loads(row[0]) if row else {"error": True}
    if tree.get("error"):
        raise DecodeError("query", str(tree.get("error_message", "cannot parse the statement")))
    nodes = list(_nodes(tree["statements"]))
    ctes = {key for n in nodes if "cte_map" in n for key in (e["key"] for e in n["cte_map"]["map"])}
    catalog = {
        str(r[0]).lower()
        for r in cur.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "UNION SELECT view_name FROM duckdb_views() WHERE database_name = current_database()"
        ).fetchall()
    }
    for node in nodes:
        kind = node.get("type")
        if kind == "TABLE_FUNCTION":
            name = str(node["function"].get("function_name", "")).lower()
            if name not in ALLOWED_TABLE_FUNCTIONS:
                raise ForbiddenError(
                    f"table function {name}() is not allowed: it reads files or runs other SQL "
                    f"(allowed: {', '.join(sorted(ALLOWED_TABLE_FUNCTIONS))})"
                )
        elif kind == "BASE_TABLE":
            name = str(node.get("table_name", ""))
            if node.get("catalog_name"):
                raise ForbiddenError(
                    f"only the opsloop database may be read, not catalog {node['catalog_name']!r}"
                )
            if name.lower() in HIDDEN_TABLES:
                raise ForbiddenError(f"table {name} is not readable over SQL")
            if name not in ctes and (not _IDENTIFIER.fullmatch(name) or name.lower() not in catalog):
                raise ForbiddenError(f"{name!r} is not a table of the store (files cannot be read)")
        elif (
            node.get("class") == "FUNCTION"
            and str(node.get("function_name", "")).lower() in FORBIDDEN_FUNCTIONS
        ):
            raise ForbiddenError(f"function {node['function_name']}() is not allowed")


def run_readonly(
    store: Store, sql: str, max_rows: int, timeout_s: float, params: Sequence[Any] | None = None
) -> QueryResult:
    """Vet ``sql`` and run it in a read-only transaction on a cursor of ``store``'s database.

    ``params`` fill the statement's ``?`` placeholders (values, never SQL).
    """
    statement = vet_statement(sql)
    with store.reader() as cur:
        # names of Python variables must not resolve to tables (DuckDB's replacement scans)
        cur.execute("SET python_enable_replacements = false")
        vet_tree(cur, statement)
        cur.execute("BEGIN TRANSACTION READ ONLY")
        timer = threading.Timer(timeout_s, cur.interrupt)
        timer.start()
        try:
            table: pa.Table = (
                cur.sql(statement, params=list(params) if params else None)
                .limit(max_rows + 1)
                .to_arrow_table()
            )
        except duckdb.InterruptException as exc:
            raise QueryTimeoutError(
                f"query interrupted after its time limit of {timeout_s:g} s: narrow it"
            ) from exc
        except duckdb.Error as exc:
            raise DecodeError("query", str(exc).splitlines()[0]) from exc
        finally:
            timer.cancel()
            # an interrupted or failed transaction may already be gone
            with suppress(duckdb.Error):
                cur.execute("ROLLBACK")
    truncated = table.num_rows > max_rows
    return QueryResult(table.slice(0, max_rows) if truncated else table, truncated)
