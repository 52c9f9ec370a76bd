"""One-way targets: a table created from the source's schema holds what the source holds."""

from __future__ import annotations

from collections.abc import Callable

from conflict.canonical import canonical_row
from connectors.base import ApplyOp, ApplyStatus, Column, TableSchema
from connectors.postgres.ddl import column_type
from tests.connectors.postgres.helpers import binding, endpoint, query, sql
from tests.connectors.postgres.test_pg_types import TYPES


def test_a_postgres_table_is_copied_type_for_type(
        pg_dsn_factory: Callable[[], str]) -> None:
    src_dsn, dst_dsn = pg_dsn_factory(), pg_dsn_factory()
    builtin = [(c, t, v) for c, t, v, _, _ in TYPES if t not in ("mood", "mood[]", "posint",
                                                                  "inet")]
    cols = ", ".join(f"{c} {t}" for c, t, _ in builtin)
    sql(src_dsn, f"CREATE TABLE ty (id int PRIMARY KEY, {cols} NOT NULL DEFAULT 'x')")
    src, dst = endpoint(src_dsn, "src"), endpoint(dst_dsn, "dst")
    try:
        b_src, b_dst = binding("ty", "src"), binding("ty", "dst")
        done = dst.create_table(b_dst, src.schema(b_src), b_src, source_kind="postgres")
        assert done == ["created table public.ty from src's ty"]
        assert dst.create_table(b_dst, src.schema(b_src), b_src, source_kind="postgres") == []
        types = dict(query(dst_dsn, "SELECT attname, format_type(atttypid, atttypmod)"
                                    " FROM pg_attribute WHERE attrelid = 'ty'::regclass"
                                    " AND attnum > 0"))
        assert types["c_num"] == "numeric(12,3)" and types["c_varchar"] == "character varying(20)"
        assert types["c_int2"] == "smallint" and types["c_tstz"] == "timestamp with time zone"
        assert types["c_int2d"] == "integer[]" and types["c_char"] == "character(4)"
        assert query(dst_dsn, "SELECT relreplident::text FROM pg_class WHERE relname = 'ty'") \
            == [("f",)]
        assert query(dst_dsn, "SELECT attnotnull FROM pg_attribute WHERE attrelid ="
                              " 'ty'::regclass AND attname = 'c_null'") == [(True,)]
        row = {"id": 1, **{c: v for c, _, v in builtin}, "c_null": "x"}
        src.apply(b_src, [ApplyOp({"id": 1}, row, None, "v")])
        (snap,) = src.snapshot(b_src, None, 10).rows
        (res,) = dst.apply(b_dst, [ApplyOp({"id": 1}, snap.row, None, "v")])
        assert res.status is ApplyStatus.APPLIED
        assert canonical_row(dst.read(b_dst, [{"id": 1}])['{"id":1}'][0]) == \
            canonical_row(snap.row)
    finally:
        src.close()
        dst.close()


def test_a_table_from_another_engine_and_mapped_columns(pg_dsn: str) -> None:
    schema = TableSchema("customers", (
        Column("id", "int", "INTEGER", False),
        Column("name", "text", "VARCHAR(80)", False),
        Column("balance", "decimal", "DECIMAL(10,2)"),
        Column("active", "bool", "TINYINT(1)"),
        Column("seen", "timestamp", "DATETIME(6)"),
        Column("doc", "json", "LONGTEXT"),
        Column("secret", "text", "TEXT"),
    ), ("id",))
    source = binding("customers", "maria", exclude=frozenset({"secret"}))
    target = binding("clients", "pg", columns={"name": "full_name"})
    ep = endpoint(pg_dsn, "pg")
    try:
        assert ep.create_table(target, schema, source) == [
            "created table public.clients from maria's customers"]
        assert query(pg_dsn, "SELECT attname, format_type(atttypid, atttypmod), attnotnull"
                             " FROM pg_attribute WHERE attrelid = 'clients'::regclass"
                             " AND attnum > 0 ORDER BY attnum") == [
            ("id", "integer", True), ("full_name", "character varying(80)", True),
            ("balance", "numeric(10,2)", False), ("active", "boolean", False),
            ("seen", "timestamp without time zone", False), ("doc", "jsonb", False)]
        assert ep.schema(target).key == ("id",)
    finally:
        ep.close()


def test_column_types_by_logical_type() -> None:
    def t(logical: str, native: str, kind: str | None = None) -> str:
        return column_type(Column("c", logical, native), kind)

    assert t("int", "BIGINT UNSIGNED") == "bigint" and t("int", "INT UNSIGNED") == "bigint"
    assert t("int", "SMALLINT") == "smallint" and t("int", "INTEGER") == "integer"
    assert t("float", "DOUBLE") == "double precision" and t("float", "FLOAT") == "real"
    assert t("decimal", "NUMERIC") == "numeric" and t("decimal", "DECIMAL(5)") == "numeric(5)"
    assert t("array", "text[]", "postgres") == "text[]" and t("array", "JSON") == "jsonb"
    assert t("text", "mood", "postgres") == "text"  # a type of the source database only
    assert t("any", "BLOB SUB_TYPE 1") == "text" and t("bytes", "BLOB") == "bytea"
