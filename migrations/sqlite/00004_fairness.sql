-- Fair sales: per-item protection and the blocklist. Kept in step with
-- mysql/00004_fairness.sql; see that file for why.

-- +goose Up
ALTER TABLE items ADD COLUMN protection VARCHAR(16) NOT NULL DEFAULT 'none';

CREATE TABLE IF NOT EXISTS blocked_users (
    user_id    VARCHAR(64)  NOT NULL PRIMARY KEY,
    reason     VARCHAR(255) NOT NULL DEFAULT '',
    blocked_at DATETIME     NOT NULL
);
