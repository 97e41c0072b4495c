CREATE TABLE c (id INT PRIMARY KEY, name TEXT, region TEXT);
CREATE TABLE o (id INT PRIMARY KEY, cid INT, amount INT, at TIMESTAMP);
CREATE SOURCE bid WITH (connector = 'nexmark', nexmark.table.type = 'Bid', nexmark.event.num = '0');
CREATE MATERIALIZED VIEW per_c AS SELECT cid, count(*) AS n, sum(amount) AS total FROM o GROUP BY cid;
