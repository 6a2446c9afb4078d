-- The waiting room. Kept in step with sqlite/00006_queue.sql.
--
-- An item with protection 'queue' sells only to buyers admitted by its
-- line (app/waitroom, infra/redisline): admit_per_second is how many
-- buyers the line admits per second across all instances, max_active
-- bounds the admissions unexpired and unused at once (0: only the stock
-- bounds them). Both are 0 on every other item. The line itself lives in
-- Redis beside the item's ledger; docs/QUEUE.md says what a wipe costs it.

-- +goose Up
ALTER TABLE items ADD COLUMN admit_per_second BIGINT NOT NULL DEFAULT 0 AFTER protection;
ALTER TABLE items ADD COLUMN max_active BIGINT NOT NULL DEFAULT 0 AFTER admit_per_second;
