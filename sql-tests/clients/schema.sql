-- What the client tests load: a table with a comment, a table with a
-- two-column primary key (key order differs from column order), a plain
-- view and a materialized view, the objects every tool lists.
CREATE TABLE bids (auction bigint, bidder bigint, price bigint, date_time timestamp);
COMMENT ON TABLE bids IS 'Nexmark-style bid stream';
INSERT INTO bids VALUES
  (1, 100, 50,  '2024-01-01 10:00:00'),
  (1, 101, 75,  '2024-01-01 10:00:05'),
  (2, 100, 200, '2024-01-01 10:01:00'),
  (2, 102, 220, '2024-01-01 10:01:30'),
  (3, 103, 10,  '2024-01-01 10:02:00');
CREATE TABLE auctions (seller bigint, id bigint, category int, PRIMARY KEY (id, seller));
INSERT INTO auctions VALUES (7, 1, 10), (8, 2, 20);
CREATE VIEW high_bids AS
  SELECT auction, bidder, price, date_time FROM bids WHERE price > 100;
CREATE MATERIALIZED VIEW avg_price AS
  SELECT auction, avg(price) AS avg_price, count(*) AS num_bids, max(date_time) AS last_bid
  FROM bids GROUP BY auction;
FLUSH;
