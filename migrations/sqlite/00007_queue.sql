-- The waiting room. Kept in step with mysql/00006_queue.sql; see that file
-- for why.

-- +goose Up
ALTER TABLE items ADD COLUMN admit_per_second INTEGER NOT NULL DEFAULT 0;
ALTER TABLE items ADD COLUMN max_active INTEGER NOT NULL DEFAULT 0;
