SELECT cid, count(*) AS n, max(amount) AS top FROM o GROUP BY cid HAVING count(*) > 1
