-- Per-item stock buckets. Kept in step with sqlite/00005_stock_buckets.sql.
--
-- stock_buckets is how many Redis key sets (stock buckets, each under its
-- own hash tag and so its own cluster slot) the ledger splits the item's
-- stock over, so that one hot item's purchases are spread over several
-- Redis masters. It is set at creation and never changed: every order id
-- names its bucket, and every buyer's one-order-per-user record lives in
-- the bucket their user id hashes to. Existing items keep one bucket,
-- which is exactly the key layout they always had.

-- +goose Up
ALTER TABLE items ADD COLUMN stock_buckets INT NOT NULL DEFAULT 1 AFTER purchase_rate;
ALTER TABLE items ADD CONSTRAINT items_stock_buckets_range CHECK (stock_buckets BETWEEN 1 AND 16);
