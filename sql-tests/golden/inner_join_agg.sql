SELECT c.region, count(*) AS n, sum(o.amount) AS total FROM o JOIN c ON o.cid = c.id GROUP BY c.region
