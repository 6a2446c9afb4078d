-- Orders that failed are kept, and restock keys belong to one item.
-- Kept in step with sqlite/00002_fates.sql.
--
-- 1. The orders table records every order's fate, not only confirmed ones:
--    a failed order gets a row with status 'failed' before its unit goes back
--    to Redis. The unique key on order_id is then the fence that decides
--    between a worker confirming an order and anyone failing it: whichever
--    row is inserted first is the order's fate, and the other insert is a
--    no-op. (Before this, the fence lived in Redis and a worker could confirm
--    an order that another worker had just given back.)
-- 2. One order per user per item now holds only for live orders. `holder` is
--    the user id while an order holds its unit and NULL once it has given it
--    back; a unique key allows any number of NULLs, so a failed order does
--    not stop its user from buying again, while two live orders of one user
--    for one item still cannot both exist.
-- 3. A restock key is unique per item, as in Redis: the same key on two
--    items is two restocks.

-- +goose Up
ALTER TABLE orders ADD COLUMN holder VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL AFTER user_id;
UPDATE orders SET holder = user_id WHERE status = 'confirmed';
ALTER TABLE orders ADD UNIQUE KEY orders_item_holder (item_id, holder);
ALTER TABLE orders DROP INDEX orders_user_item;
ALTER TABLE orders ADD KEY orders_user (user_id);

ALTER TABLE restocks DROP PRIMARY KEY, ADD PRIMARY KEY (item_id, idempotency_key);
ALTER TABLE restocks DROP INDEX restocks_item;
