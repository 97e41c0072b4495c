SELECT o.id, c.name FROM o FULL JOIN c ON o.cid = c.id
