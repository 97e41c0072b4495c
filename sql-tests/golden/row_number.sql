SELECT * FROM (SELECT cid, id, amount, row_number() OVER (PARTITION BY cid ORDER BY amount DESC) AS rn FROM o) t WHERE rn <= 3
