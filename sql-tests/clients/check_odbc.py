#!/usr/bin/env python3
"""psqlODBC (Tableau's legacy connector, Power BI and Excel ODBC sources)
through unixODBC and pyodbc against a live Freshet loaded with
sql-tests/clients/schema.sql: the catalog functions and a query.

usage: check_odbc.py HOST PORT USER DATABASE
"""
import sys

import pyodbc

from checks import check, eq, finish

HOST, PORT, USER, DB = sys.argv[1:5]

conn = pyodbc.connect(
    f"DRIVER={{PostgreSQL Unicode}};SERVER={HOST};PORT={PORT};DATABASE={DB};UID={USER};PWD=",
    autocommit=True,
)


def tables():
    rows = conn.cursor().tables(schema="public").fetchall()
    eq(sorted((r.table_name, r.table_type) for r in rows),
       [("auctions", "TABLE"), ("avg_price", "MATVIEW"), ("bids", "TABLE"), ("high_bids", "VIEW")])


def schemas():
    rows = conn.cursor().tables(catalog="", schema="%", table="").fetchall()
    eq([r.table_schem for r in rows], ["public"])


def columns():
    rows = conn.cursor().columns(table="bids").fetchall()
    eq([(r.column_name, r.type_name) for r in rows],
       [("auction", "int8"), ("bidder", "int8"), ("price", "int8"), ("date_time", "timestamp")])


def primary_keys():
    eq(conn.cursor().primaryKeys(table="bids").fetchall(), [])
    rows = conn.cursor().primaryKeys(table="auctions").fetchall()
    eq([(r.column_name, r.key_seq, r.pk_name) for r in rows],
       [("id", 1, "auctions_pkey"), ("seller", 2, "auctions_pkey")])


def foreign_keys():
    eq(conn.cursor().foreignKeys(table="bids").fetchall(), [])


def query():
    rows = conn.cursor().execute("SELECT bidder FROM bids WHERE auction = ? ORDER BY bidder", 2).fetchall()
    eq([r[0] for r in rows], [100, 102])
    rows = conn.cursor().execute("SELECT auction, num_bids FROM avg_price ORDER BY auction").fetchall()
    eq([tuple(r) for r in rows], [(1, 2), (2, 2), (3, 1)])


check("SQLTables: tables, views, materialized views", tables)
check("SQLTables: schemas", schemas)
check("SQLColumns", columns)
check("SQLPrimaryKeys", primary_keys)
check("SQLForeignKeys", foreign_keys)
check("SQLGetTypeInfo", lambda: eq(len(conn.cursor().getTypeInfo().fetchall()) > 10, True))
check("parameterized query and a materialized view", query)

finish("ODBC")
