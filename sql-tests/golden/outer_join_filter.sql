SELECT o.id, c.name FROM o LEFT JOIN c ON o.cid = c.id AND o.amount > 100 AND c.region <> 'eu'
