#!/usr/bin/env python3
"""Real-client checks against a live Freshet loaded with sql-tests/clients/schema.sql.

usage: check_clients.py HOST PORT USER DATABASE

Runs what psycopg2, psycopg 3 (text and binary), SQLAlchemy's Inspector and
pandas do when a tool connects, and checks every result. Prints one line per
check ("ok" / "FAIL") and exits non-zero if any check failed.
"""
import datetime as dt
import sys

from checks import check, eq, finish

HOST, PORT, USER, DB = sys.argv[1:5]

BIDS = [
    (1, 100, 50, dt.datetime(2024, 1, 1, 10, 0, 0)),
    (1, 101, 75, dt.datetime(2024, 1, 1, 10, 0, 5)),
    (2, 100, 200, dt.datetime(2024, 1, 1, 10, 1, 0)),
    (2, 102, 220, dt.datetime(2024, 1, 1, 10, 1, 30)),
    (3, 103, 10, dt.datetime(2024, 1, 1, 10, 2, 0)),
]

import psycopg2  # noqa: E402


@check("psycopg2: connect, server_version, query a table")
def _():
    with psycopg2.connect(host=HOST, port=PORT, user=USER, dbname=DB) as c:
        eq(c.server_version >= 150000, True)
        cur = c.cursor()
        cur.execute("SELECT * FROM bids ORDER BY auction, bidder")
        eq(cur.fetchall(), BIDS)
        eq([d.name for d in cur.description], ["auction", "bidder", "price", "date_time"])


@check("psycopg2: parameters, view and materialized view, SHOW, current_setting, version()")
def _():
    c = psycopg2.connect(host=HOST, port=PORT, user=USER, dbname=DB)
    cur = c.cursor()
    cur.execute("SELECT bidder FROM bids WHERE auction = %s AND price > %s ORDER BY 1", (2, 150))
    eq(cur.fetchall(), [(100,), (102,)])
    cur.execute("SELECT auction, bidder FROM high_bids ORDER BY 1, 2")
    eq(cur.fetchall(), [(2, 100), (2, 102)])
    cur.execute("SELECT auction, num_bids FROM avg_price ORDER BY 1")
    eq(cur.fetchall(), [(1, 2), (2, 2), (3, 1)])
    cur.execute("SHOW transaction isolation level")
    eq(cur.fetchone()[0], "read committed")
    cur.execute("SELECT current_setting('server_version_num')")
    eq(int(cur.fetchone()[0]) >= 150000, True)
    cur.execute("SELECT version()")
    eq(cur.fetchone()[0].startswith("PostgreSQL 15."), True)
    cur.execute("SELECT auction::text, (price + 1)::text, 42::bigint, count(*) OVER (), "
                "CASE WHEN true THEN 1 END, interval '1 day', price, b.price, (bidder) FROM bids b LIMIT 1")
    eq([d.name for d in cur.description],
       ["auction", "text", "int8", "count", "case", "interval", "price", "price", "bidder"])
    cur.execute("SELECT current_user, session_user, user")
    eq([d.name for d in cur.description], ["current_user", "session_user", "user"])
    eq(cur.fetchone(), (USER, USER, USER))
    c.rollback()
    c.close()


@check("psycopg2: named (server-side) cursor, fetched in pieces")
def _():
    c = psycopg2.connect(host=HOST, port=PORT, user=USER, dbname=DB)
    cur = c.cursor(name="bids_cur")
    cur.itersize = 2
    cur.execute("SELECT * FROM bids ORDER BY auction, bidder")
    eq(cur.fetchmany(2), BIDS[:2])
    eq(cur.fetchall(), BIDS[2:])
    cur.close()
    c.rollback()
    c.close()


@check("psycopg2: an error, then the connection still works")
def _():
    c = psycopg2.connect(host=HOST, port=PORT, user=USER, dbname=DB)
    cur = c.cursor()
    try:
        cur.execute("SELECT * FROM no_such_table")
        raise AssertionError("no error")
    except psycopg2.errors.UndefinedTable:
        c.rollback()
    cur.execute("SELECT count(*) FROM bids")
    eq(cur.fetchone()[0], 5)
    c.close()


@check("information_schema lists tables, views and materialized views with columns (Grafana)")
def _():
    c = psycopg2.connect(host=HOST, port=PORT, user=USER, dbname=DB)
    c.autocommit = True
    cur = c.cursor()
    cur.execute("SELECT table_name, table_type FROM information_schema.tables "
                "WHERE table_schema = 'public' ORDER BY 1")
    eq(cur.fetchall(), [("auctions", "BASE TABLE"), ("avg_price", "VIEW"), ("bids", "BASE TABLE"),
                        ("high_bids", "VIEW")])
    cur.execute("SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name = 'avg_price' ORDER BY ordinal_position")
    eq([r[0] for r in cur.fetchall()], ["auction", "avg_price", "num_bids", "last_bid"])
    cur.execute("SELECT current_setting('server_version_num')::int / 100")
    eq(cur.fetchone()[0] >= 1500, True)
    c.close()


import psycopg  # noqa: E402
from psycopg import pq  # noqa: E402

# Grafana's PostgreSQL data source: its table and column discovery
# (postgresMetaQuery.ts, with the search_path expansion it always adds) and
# a time-series panel, sent as Grafana's pgx backend does (simple protocol).
GRAFANA_IN_SEARCH_PATH = """quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )"""


def grafana_columns(table):
    t = "'%s'" % table
    return """SELECT quote_ident(column_name) AS "column", data_type AS "type"
    FROM information_schema.columns
    WHERE
      CASE WHEN array_length(parse_ident(%s),1) = 2
        THEN quote_ident(table_schema) = (parse_ident(%s))[1]
          AND quote_ident(table_name) = (parse_ident(%s))[2]
        ELSE quote_ident(table_name) = %s
          AND %s
      END""" % (t, t, t, t, GRAFANA_IN_SEARCH_PATH)


@check("Grafana: health check, table and column discovery, a time-series panel")
def _():
    with psycopg.connect(host=HOST, port=PORT, user=USER, dbname=DB, autocommit=True) as c:
        def rows(sql):
            res = c.pgconn.exec_(sql.encode())
            ok = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK, pq.ExecStatus.EMPTY_QUERY)
            if res.status not in ok:
                raise AssertionError((res.error_message or b"").decode())
            return [tuple(None if res.get_value(r, f) is None else res.get_value(r, f).decode()
                          for f in range(res.nfields)) for r in range(res.ntuples)]
        eq(rows("-- ping"), [])
        eq(int(rows("SELECT current_setting('server_version_num')::int/100 as version")[0][0]) >= 1500, True)
        tables = rows("""SELECT
    CASE WHEN %s
      THEN quote_ident(table_name)
      ELSE quote_ident(table_schema) || '.' || quote_ident(table_name)
    END AS "table"
    FROM information_schema.tables
    WHERE quote_ident(table_schema) NOT IN ('information_schema', 'pg_catalog')
    ORDER BY CASE WHEN %s THEN 0 ELSE 1 END, 1""" % (GRAFANA_IN_SEARCH_PATH, GRAFANA_IN_SEARCH_PATH))
        eq(tables, [("auctions",), ("avg_price",), ("bids",), ("high_bids",)])
        for table in ("bids", "public.bids"):
            eq(rows(grafana_columns(table)), [("auction", "bigint"), ("bidder", "bigint"), ("price", "bigint"),
                                              ("date_time", "timestamp without time zone")])
        eq([r[0] for r in rows(grafana_columns("avg_price"))], ["auction", "avg_price", "num_bids", "last_bid"])
        panel = rows("""SELECT
  floor(extract(epoch from date_time)/60)*60 AS "time",
  avg(price) AS "price"
FROM bids
WHERE
  date_time BETWEEN '2024-01-01T09:00:00Z' AND '2024-01-01T11:00:00Z'
GROUP BY 1
ORDER BY 1""")
        # avg(bigint) is a numeric with 16 fraction digits, as in PostgreSQL.
        eq(panel, [("1704103200", "62.5000000000000000"), ("1704103260", "210.0000000000000000"),
                   ("1704103320", "10.0000000000000000")])


@check("psycopg 3: server-side parameters, text and binary results, prepared statements")
def _():
    with psycopg.connect(host=HOST, port=PORT, user=USER, dbname=DB, autocommit=True) as c:
        rows = c.execute("SELECT bidder, price FROM bids WHERE auction = %s ORDER BY bidder", (1,)).fetchall()
        eq(rows, [(100, 50), (101, 75)])
        cur = c.cursor(binary=True)
        cur.execute("SELECT * FROM bids WHERE price >= %s ORDER BY auction, bidder", (200,))
        eq(cur.fetchall(), [b for b in BIDS if b[2] >= 200])
        for _ in range(7):  # crosses the automatic-prepare threshold
            n = c.execute("SELECT count(*) FROM bids WHERE auction = %s", (2,)).fetchone()[0]
            eq(n, 2)
        eq(c.execute("SELECT avg_price FROM avg_price WHERE auction = %s", (2,), prepare=True).fetchone()[0], 210.0)


@check("psycopg 3: Python values as typed parameters, text and binary")
def _():
    import decimal
    values = (42, 3.5, decimal.Decimal("12345.6789"), "it's", dt.datetime(2024, 1, 1, 10, 0, 0, 123456),
              dt.datetime(2024, 1, 1, 10, tzinfo=dt.timezone.utc), True, dt.date(2024, 1, 1),
              dt.timedelta(days=1, seconds=7384), None, [1, 2, 3])
    with psycopg.connect(host=HOST, port=PORT, user=USER, dbname=DB, autocommit=True) as c:
        for mark in ("%s", "%b"):
            row = c.execute("SELECT " + ", ".join([mark] * len(values)), values).fetchone()
            eq(row, values)
        # A numeric parameter against a bigint column keeps its fraction.
        rows = c.execute("SELECT bidder FROM bids WHERE price > %s ORDER BY bidder", (decimal.Decimal("199.5"),))
        eq(rows.fetchall(), [(100,), (102,)])
        rows = c.execute("SELECT bidder FROM bids WHERE date_time > %s AND bidder = ANY(%s) ORDER BY 1",
                         (dt.datetime(2024, 1, 1, 10, 0, 1), [100, 102]))
        eq(rows.fetchall(), [(100,), (102,)])


@check("psycopg 3: server cursor, COPY TO STDOUT and FROM STDIN, temporary table")
def _():
    with psycopg.connect(host=HOST, port=PORT, user=USER, dbname=DB) as c:
        with c.cursor(name="bids_cur") as cur:
            cur.itersize = 2
            cur.execute("SELECT * FROM bids WHERE auction > %s ORDER BY auction, bidder", (0,))
            eq(list(cur), BIDS)
        with c.cursor() as cur:
            with cur.copy("COPY (SELECT auction, price FROM bids ORDER BY auction, bidder) TO STDOUT") as cp:
                eq([tuple(r) for r in cp.rows()], [(str(a), str(p)) for a, _, p, _ in BIDS])
            with cur.copy("COPY auctions TO STDOUT WITH (FORMAT csv, HEADER)") as cp:
                text = b"".join(bytes(b) for b in cp).decode()
            eq(sorted(text.splitlines()), ["7,1,10", "8,2,20", "seller,id,category"])
        c.commit()
        c.execute("CREATE TEMP TABLE tmp_bids (auction bigint, price bigint)")
        with c.cursor() as cur:
            cur.executemany("INSERT INTO tmp_bids VALUES (%s, %s)", [(9, 10), (9, 11)])
        c.commit()
        with c.cursor() as cur:
            with cur.copy("COPY tmp_bids (price, auction) FROM STDIN") as cp:
                cp.write_row((100, 9))
                cp.write_row((None, 8))
            eq(cur.rowcount, 2)
        c.commit()
        c.execute("FLUSH")
        eq(c.execute("SELECT sum(price), count(*), count(price) FROM tmp_bids").fetchone(), (121, 4, 3))
    # The session ended: its temporary table is gone.
    import time
    with psycopg.connect(host=HOST, port=PORT, user=USER, dbname=DB, autocommit=True) as c:
        for _ in range(50):
            n = c.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'tmp_bids'").fetchone()[0]
            if n == 0:
                break
            time.sleep(0.1)
        eq(n, 0)


import sqlalchemy as sa  # noqa: E402


def engine(driver):
    return sa.create_engine(f"postgresql+{driver}://{USER}@{HOST}:{PORT}/{DB}", pool_pre_ping=True)


for driver in ("psycopg2", "psycopg"):

    @check(f"SQLAlchemy {sa.__version__} ({driver}): Inspector lists schemas, tables, views, materialized views, columns")
    def _(driver=driver):
        insp = sa.inspect(engine(driver))
        eq("public" in insp.get_schema_names(), True)
        eq(sorted(insp.get_table_names()), ["auctions", "bids"])
        pk = insp.get_pk_constraint("auctions")
        eq((pk["constrained_columns"], pk["name"]), (["id", "seller"], "auctions_pkey"))
        eq(insp.get_view_names(), ["high_bids"])
        eq(insp.get_materialized_view_names(), ["avg_price"])
        cols = {c["name"]: str(c["type"]) for c in insp.get_columns("bids")}
        eq(cols, {"auction": "BIGINT", "bidder": "BIGINT", "price": "BIGINT", "date_time": "TIMESTAMP"})
        eq([c["name"] for c in insp.get_columns("avg_price")], ["auction", "avg_price", "num_bids", "last_bid"])
        # psycopg 3 binds the catalog name of `classoid = $n::regclass`.
        eq(insp.get_table_comment("bids")["text"], "Nexmark-style bid stream")
        eq(insp.has_table("bids"), True)
        eq("price > 100" in insp.get_view_definition("high_bids"), True)


import asyncio  # noqa: E402

import asyncpg  # noqa: E402


@check("asyncpg: binary results, typed parameters, arrays (type introspection), a cursor, errors")
def _():
    async def run():
        c = await asyncpg.connect(host=HOST, port=int(PORT), user=USER, database=DB)
        try:
            rows = await c.fetch("SELECT * FROM bids WHERE auction = $1 ORDER BY bidder", 2)
            eq([tuple(r) for r in rows], [b for b in BIDS if b[0] == 2])
            row = await c.fetchrow("SELECT 42::bigint AS a, 12.34::numeric(10,2) AS b, interval '1 day' AS c, "
                                   "ARRAY[1,2] AS d, '{\"a\":1}'::jsonb AS e, date '2024-01-01' AS f")
            import decimal
            # jsonb comes back in PostgreSQL's canonical text ("a": 1).
            eq(tuple(row), (42, decimal.Decimal("12.34"), dt.timedelta(days=1), [1, 2], '{"a": 1}',
                            dt.date(2024, 1, 1)))
            rows = await c.fetch("SELECT bidder FROM bids WHERE price > $1 AND bidder = ANY($2::bigint[]) "
                                 "ORDER BY bidder", 100, [100, 102])
            eq([r[0] for r in rows], [100, 102])
            async with c.transaction():
                got = [tuple(r) async for r in c.cursor("SELECT * FROM bids ORDER BY auction, bidder", prefetch=2)]
            eq(got, BIDS)
            try:
                await c.fetch("SELECT * FROM no_such_table")
                raise AssertionError("no error")
            except asyncpg.UndefinedTableError:
                pass
            eq(await c.fetchval("SELECT count(*) FROM avg_price"), 3)
        finally:
            await c.close()
    asyncio.run(run())


import pandas as pd  # noqa: E402


@check("pandas.read_sql over a materialized view and with parameters")
def _():
    e = engine("psycopg2")
    df = pd.read_sql("SELECT * FROM avg_price ORDER BY auction", e)
    eq(list(df.columns), ["auction", "avg_price", "num_bids", "last_bid"])
    eq(df["num_bids"].tolist(), [2, 2, 1])
    df = pd.read_sql(sa.text("SELECT * FROM bids WHERE auction = :a ORDER BY bidder"), e, params={"a": 2})
    eq(df["price"].tolist(), [200, 220])


finish("client")
