SELECT cid, count(DISTINCT amount) AS d, sum(amount) AS s FROM o GROUP BY cid
