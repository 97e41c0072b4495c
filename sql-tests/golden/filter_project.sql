SELECT id, amount * 2 AS double FROM o WHERE amount > 10
