SELECT a.id, b.name, p.total FROM o a JOIN c b ON a.cid = b.id JOIN per_c p ON p.cid = b.id
