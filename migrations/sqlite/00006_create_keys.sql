-- Idempotent admin creates. Kept in step with mysql/00006_create_keys.sql;
-- see that file for why.

-- +goose Up
ALTER TABLE items ADD COLUMN create_key TEXT NULL;
ALTER TABLE items ADD COLUMN opened INTEGER NOT NULL DEFAULT 1;
CREATE UNIQUE INDEX items_create_key ON items (create_key);
