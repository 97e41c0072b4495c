#!/usr/bin/env python3
"""SQLAlchemy 1.4 (what Superset runs) with psycopg2 against a live Freshet
loaded with sql-tests/clients/schema.sql: Inspector reflection and pandas.

usage: check_sqlalchemy14.py HOST PORT USER DATABASE
"""
import sys

import pandas as pd
import sqlalchemy as sa

from checks import check, eq, finish

HOST, PORT, USER, DB = sys.argv[1:5]
assert sa.__version__.startswith("1.4"), sa.__version__

engine = sa.create_engine(f"postgresql+psycopg2://{USER}@{HOST}:{PORT}/{DB}", pool_pre_ping=True)
insp = sa.inspect(engine)

check("schemas", lambda: eq("public" in insp.get_schema_names(), True))
check("tables", lambda: eq(sorted(insp.get_table_names()), ["auctions", "bids"]))
# 1.4 lists materialized views among views (Superset's dataset picker).
check("views include materialized views", lambda: eq(sorted(insp.get_view_names()), ["avg_price", "high_bids"]))
check("materialized views only", lambda: eq(insp.get_view_names(include=("materialized",)), ["avg_price"]))
check("columns", lambda: eq([c["name"] for c in insp.get_columns("avg_price")], ["auction", "avg_price", "num_bids", "last_bid"]))
check("no primary key, indexes or unique constraints on bids", lambda: (
    eq(insp.get_pk_constraint("bids")["constrained_columns"], []),
    eq(insp.get_indexes("bids"), []), eq(insp.get_unique_constraints("bids"), [])))
check("the primary key of auctions, in key order", lambda: (
    eq(insp.get_pk_constraint("auctions"), {"constrained_columns": ["id", "seller"], "name": "auctions_pkey"}),
    eq(insp.get_indexes("auctions"), [])))
check("table comment", lambda: eq(insp.get_table_comment("bids")["text"], "Nexmark-style bid stream"))


def reflect():
    md = sa.MetaData()
    md.reflect(bind=engine, views=True)
    eq(sorted(md.tables), ["auctions", "avg_price", "bids", "high_bids"])
    eq([c.name for c in md.tables["auctions"].primary_key.columns], ["id", "seller"])
    bids = md.tables["bids"]
    with engine.connect() as c:
        rows = c.execute(sa.select(bids.c.bidder).where(bids.c.auction == 2).order_by(bids.c.bidder)).fetchall()
    eq([r[0] for r in rows], [100, 102])


check("MetaData.reflect and a Core select", reflect)
check("pandas.read_sql_table", lambda: eq(len(pd.read_sql_table("bids", engine)), 5))

finish("SQLAlchemy 1.4")
