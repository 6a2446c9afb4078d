-- Orders that failed are kept, and restock keys belong to one item.
-- Kept in step with mysql/00002_fates.sql; see that file for why.
--
-- SQLite cannot drop a constraint declared inside CREATE TABLE, so both
-- tables are rebuilt: create the new shape, copy, drop, rename.

-- +goose Up
CREATE TABLE orders_new (
    id           INTEGER      PRIMARY KEY AUTOINCREMENT,
    order_id     VARCHAR(64)  NOT NULL,
    item_id      BIGINT       NOT NULL,
    user_id      VARCHAR(64)  NOT NULL,
    holder       VARCHAR(64)  NULL,
    price_cents  BIGINT       NOT NULL,
    status       VARCHAR(16)  NOT NULL,
    reason       VARCHAR(255) NOT NULL DEFAULT '',
    created_at   DATETIME     NOT NULL,
    confirmed_at DATETIME     NULL,
    updated_at   DATETIME     NOT NULL,
    CONSTRAINT orders_order_id UNIQUE (order_id),
    CONSTRAINT orders_item_holder UNIQUE (item_id, holder)
);
INSERT INTO orders_new (id, order_id, item_id, user_id, holder, price_cents, status, reason, created_at, confirmed_at, updated_at)
    SELECT id, order_id, item_id, user_id, CASE WHEN status = 'confirmed' THEN user_id END,
           price_cents, status, reason, created_at, confirmed_at, updated_at FROM orders;
DROP TABLE orders;
ALTER TABLE orders_new RENAME TO orders;
CREATE INDEX IF NOT EXISTS orders_item_status ON orders (item_id, status);
CREATE INDEX IF NOT EXISTS orders_user ON orders (user_id);

CREATE TABLE restocks_new (
    item_id         BIGINT       NOT NULL,
    idempotency_key VARCHAR(128) NOT NULL,
    added           BIGINT       NOT NULL,
    created_at      DATETIME     NOT NULL,
    PRIMARY KEY (item_id, idempotency_key)
);
INSERT INTO restocks_new (item_id, idempotency_key, added, created_at)
    SELECT item_id, idempotency_key, added, created_at FROM restocks;
DROP TABLE restocks;
ALTER TABLE restocks_new RENAME TO restocks;
