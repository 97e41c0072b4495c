// node-postgres checks against a live Freshet loaded with
// sql-tests/clients/schema.sql: untyped parameters (node-pg sends no types),
// text and binary results, a named prepared statement, multi-statement
// queries. Usage: node check_node_pg.js HOST PORT USER DB
const { Client } = require("pg");
const [host, port, user, database] = process.argv.slice(2);
const failures = [];

function eq(got, want) {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  if (g !== w) throw new Error(`got ${g}, want ${w}`);
}

async function check(label, fn) {
  try {
    await fn();
    console.log("ok    " + label);
  } catch (e) {
    failures.push(label);
    console.log("FAIL  " + label + " -> " + e.message);
  }
}

(async () => {
  const c = new Client({ host, port: Number(port), user, database });
  await c.connect();
  await check("untyped parameters", async () => {
    const r = await c.query("SELECT bidder FROM bids WHERE auction = $1 AND price > $2 ORDER BY bidder", [2, 150]);
    eq(r.rows.map((x) => x.bidder), ["100", "102"]);
  });
  await check("typed casts of untyped parameters: array, timestamp, jsonb, NULL", async () => {
    const r = await c.query("SELECT $1::bigint[] AS arr, $2::timestamp AS ts, $3::int AS n, $4::jsonb AS j",
      [[1, 2], new Date(Date.UTC(2024, 0, 1, 10)), null, { a: 1 }]);
    eq(r.rows[0].arr, ["1", "2"]);
    eq(r.rows[0].n, null);
    const any = await c.query("SELECT bidder FROM bids WHERE bidder = ANY($1) ORDER BY bidder", [[100, 103]]);
    eq(any.rows.map((x) => x.bidder), ["100", "100", "103"]);
  });
  await check("binary results", async () => {
    const r = await c.query({ text: "SELECT count(*) AS n FROM bids WHERE auction = $1", values: [1], binary: true });
    eq(r.rows.length, 1);
  });
  await check("named prepared statement, twice", async () => {
    for (let i = 0; i < 2; i++) {
      const r = await c.query({ name: "by_auction", text: "SELECT price FROM bids WHERE auction = $1 ORDER BY price", values: [2] });
      eq(r.rows.map((x) => x.price), ["200", "220"]);
    }
  });
  await check("rowMode array over a view and a materialized view", async () => {
    const v = await c.query({ text: "SELECT auction, bidder FROM high_bids ORDER BY bidder", rowMode: "array" });
    eq(v.rows, [["2", "100"], ["2", "102"]]);
    const m = await c.query({ text: "SELECT auction, num_bids FROM avg_price ORDER BY auction", rowMode: "array" });
    eq(m.rows, [["1", "2"], ["2", "2"], ["3", "1"]]);
  });
  await check("multi-statement query", async () => {
    const r = await c.query("BEGIN; SELECT count(*) AS n FROM bids; COMMIT");
    eq(r[1].rows[0].n, "5");
  });
  await check("an error, then the connection still works", async () => {
    try {
      await c.query("SELECT * FROM no_such_table WHERE x = $1", [1]);
      throw new Error("no error");
    } catch (e) {
      eq(e.code, "42P01");
    }
    eq(String((await c.query("SELECT 1 AS one")).rows[0].one), "1");
  });
  await c.end();
  if (failures.length) {
    console.log(`${failures.length} node-postgres check(s) failed: ${failures}`);
    process.exit(1);
  }
  console.log("all node-postgres checks passed");
})().catch((e) => {
  console.log("FAIL  " + e.message);
  process.exit(1);
});
