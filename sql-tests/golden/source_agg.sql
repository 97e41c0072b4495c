SELECT auction, count(*) AS bids, max(price) AS top FROM bid GROUP BY auction
