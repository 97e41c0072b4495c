SELECT id, amount FROM o WHERE amount > (SELECT avg(amount) FROM o)
