#!/usr/bin/env python3
"""SUBSCRIBE from psycopg 3's server-side cursor against a live Freshet.

usage: check_subscribe.py HOST PORT USER DATABASE

psycopg declares the cursor (DECLARE "c" CURSOR FOR SUBSCRIBE ...), describes
its portal and FETCHes from it. Checks the snapshot, then that each change
arrives once, in epoch order, and that replaying the rows gives the view.
"""
import sys

import psycopg

from checks import check, eq, finish

HOST, PORT, USER, DB = sys.argv[1:5]


def connect():
    return psycopg.connect(host=HOST, port=PORT, user=USER, dbname=DB, autocommit=True)


def apply(state, rows, last):
    for r in rows:
        epoch, diff, key = r[0], r[1], tuple(r[2:])
        assert epoch >= last[0], f"epochs out of order: {rows}"
        last[0] = epoch
        state[key] = state.get(key, 0) + diff
        if state[key] == 0:
            del state[key]


@check("psycopg: server cursor over SUBSCRIBE: snapshot, then each change once")
def _():
    with connect() as w, connect() as r:
        w.execute("CREATE TABLE sub_t (id int PRIMARY KEY, g int)")
        w.execute("INSERT INTO sub_t VALUES (1, 1), (2, 1), (3, 2)")
        w.execute("CREATE MATERIALIZED VIEW sub_m AS SELECT g, count(*) AS n FROM sub_t GROUP BY g")
        w.execute("FLUSH")
        state, last = {}, [0]
        with r.cursor(name="subc") as cur:
            cur.execute("SUBSCRIBE sub_m")
            eq([d.name for d in cur.description], ["freshet_epoch", "freshet_diff", "g", "n"])
            snap = cur.fetchmany(10)
            eq(sorted(tuple(x[2:]) for x in snap), [(1, 2), (2, 1)])
            apply(state, snap, last)
            for stmt in [
                "INSERT INTO sub_t VALUES (4, 2), (5, 3)",
                "UPDATE sub_t SET g = 3 WHERE id = 1",
                "DELETE FROM sub_t WHERE g = 2",
            ]:
                w.execute(stmt)
                w.execute("FLUSH")
                rows = cur.fetchmany(100)
                assert rows, f"no change after {stmt}"
                assert all(x[0] > snap[0][0] for x in rows), rows
                apply(state, rows, last)
                view = sorted(w.execute("SELECT g, n FROM sub_m").fetchall())
                eq(sorted(k for k, n in state.items() for _ in range(n)), view)


finish("SUBSCRIBE")
