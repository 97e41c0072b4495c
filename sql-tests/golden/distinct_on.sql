SELECT DISTINCT ON (cid) cid, id, amount FROM o ORDER BY cid, amount DESC, id
