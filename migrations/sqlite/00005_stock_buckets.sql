-- Per-item stock buckets. Kept in step with mysql/00005_stock_buckets.sql;
-- see that file for why. SQLite takes the CHECK on the added column itself.

-- +goose Up
ALTER TABLE items ADD COLUMN stock_buckets INTEGER NOT NULL DEFAULT 1 CHECK (stock_buckets BETWEEN 1 AND 16);
