-- Initial schema for MySQL 8 / MariaDB 10.5+. Kept in step with
-- sqlite/00001_init.sql.
--
-- Forward-only: there is no Down section. MySQL commits DDL implicitly, so a
-- run cut short can leave some tables behind; IF NOT EXISTS lets the next
-- Migrate finish the job instead of failing on them.
--
-- Times are UTC with millisecond precision (DATETIME(3)); the store writes
-- every timestamp itself rather than relying on column defaults, so both
-- dialects behave the same.
--
-- Identifier columns (order_id, user_id, idempotency_key) use utf8mb4_bin:
-- user ids are case-sensitive, and a case-insensitive collation would make
-- "Alice" and "alice" clash on the one-order-per-user key.
--
-- There is deliberately no foreign key from orders to items. InnoDB checks a
-- foreign key by taking a shared lock on the parent row; the confirming
-- transaction then updates that same items row, so two concurrent confirms
-- on a hot item would each hold the shared lock and wait for the other's
-- exclusive one: a deadlock on every contended batch. The store checks the
-- item's existence inside the confirming transaction instead.

-- +goose Up
CREATE TABLE IF NOT EXISTS items (
    id            BIGINT       NOT NULL AUTO_INCREMENT,
    name          VARCHAR(200) NOT NULL,
    description   TEXT         NOT NULL,
    price_cents   BIGINT       NOT NULL,
    stock_total   BIGINT       NOT NULL,
    stock_left    BIGINT       NOT NULL,
    starts_at     DATETIME(3)  NOT NULL,
    ends_at       DATETIME(3)  NOT NULL,
    purchase_rate BIGINT       NOT NULL DEFAULT 0,
    version       BIGINT       NOT NULL DEFAULT 1,
    created_at    DATETIME(3)  NOT NULL,
    updated_at    DATETIME(3)  NOT NULL,
    PRIMARY KEY (id),
    KEY items_starts_at (starts_at, id),
    CONSTRAINT items_stock_left_nonneg CHECK (stock_left >= 0),
    CONSTRAINT items_stock_left_le_total CHECK (stock_left <= stock_total)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS orders (
    id           BIGINT       NOT NULL AUTO_INCREMENT,
    order_id     VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    item_id      BIGINT       NOT NULL,
    user_id      VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    price_cents  BIGINT       NOT NULL,
    status       VARCHAR(16)  NOT NULL,
    reason       VARCHAR(255) NOT NULL DEFAULT '',
    created_at   DATETIME(3)  NOT NULL,
    confirmed_at DATETIME(3)  NULL,
    updated_at   DATETIME(3)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY orders_order_id (order_id),
    UNIQUE KEY orders_user_item (user_id, item_id),
    KEY orders_item_status (item_id, status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per applied keyed restock: the primary key is what makes
-- Catalog.Restock apply a key at most once.
CREATE TABLE IF NOT EXISTS restocks (
    idempotency_key VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    item_id         BIGINT       NOT NULL,
    added           BIGINT       NOT NULL,
    created_at      DATETIME(3)  NOT NULL,
    PRIMARY KEY (idempotency_key),
    KEY restocks_item (item_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
