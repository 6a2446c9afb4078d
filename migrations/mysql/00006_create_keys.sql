-- Idempotent admin creates. Kept in step with sqlite/00006_create_keys.sql.
--
-- 1. items.create_key is the admin's Idempotency-Key of the POST that made
--    the item; the unique key is what makes a retry with the same key find
--    the item it made instead of making a second one. NULL for items made
--    before this migration and by seeding, and NULLs never clash.
-- 2. items.opened is false from the insert until the item's stock is live
--    in the ledger and the catalog has said so. Readers (shoppers, the
--    reconciler) never see an item that is not opened: a create the admin
--    was told failed can then never go on sale by itself, for instance by
--    the reconciler rebuilding its "lost" ledger at full stock. Only a retry
--    with the same key opens it. Every existing item is opened.

-- +goose Up
ALTER TABLE items ADD COLUMN create_key VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL;
ALTER TABLE items ADD COLUMN opened BOOLEAN NOT NULL DEFAULT TRUE;
CREATE UNIQUE INDEX items_create_key ON items (create_key);
