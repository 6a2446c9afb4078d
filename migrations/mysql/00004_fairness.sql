-- Fair sales: per-item protection and the blocklist. Kept in step with
-- sqlite/00004_fairness.sql.
--
-- 1. items.protection is how the item's sale guards against bots: 'none'
--    (the plain sale; every item created before this migration), 'ticket'
--    (a purchase must carry a single-use ticket) or 'pow' (the ticket is
--    issued only for a solved proof-of-work challenge). See docs/FAIRNESS.md.
-- 2. blocked_users is the blocklist: one row per user who may not buy. Every
--    instance keeps a copy in memory (loaded at start, refreshed on a timer
--    and on every reconnection of the instance bus) and is told of changes
--    over the bus, so a purchase decides "blocked" without a round trip.
--    user_id uses utf8mb4_bin like orders.user_id: user ids are
--    case-sensitive.

-- +goose Up
ALTER TABLE items ADD COLUMN protection VARCHAR(16) NOT NULL DEFAULT 'none' AFTER purchase_rate;

CREATE TABLE IF NOT EXISTS blocked_users (
    user_id    VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    reason     VARCHAR(255) NOT NULL DEFAULT '',
    blocked_at DATETIME(3)  NOT NULL,
    PRIMARY KEY (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
