-- Initial schema for the embedded SQLite stand-in. Kept in step with
-- mysql/00001_init.sql: same tables, columns, keys and checks.
--
-- Forward-only: there is no Down section.
--
-- Differences from MySQL, each forced by SQLite:
--   * ids are INTEGER PRIMARY KEY AUTOINCREMENT: only the exact type INTEGER
--     aliases the rowid and auto-assigns, and AUTOINCREMENT keeps a deleted
--     item's id from being reused (Redis ledger keys are named by item id).
--   * DATETIME columns hold UTC text "YYYY-MM-DD HH:MM:SS.fff+00:00"; the
--     driver turns that declared type back into time.Time, and all-UTC text
--     sorts in time order.
--   * secondary indexes are separate CREATE INDEX statements.
--   * the default BINARY collation is already case-sensitive.
-- As in MySQL there is no foreign key from orders to items; see the MySQL file.

-- +goose Up
CREATE TABLE IF NOT EXISTS items (
    id            INTEGER      PRIMARY KEY AUTOINCREMENT,
    name          VARCHAR(200) NOT NULL,
    description   TEXT         NOT NULL,
    price_cents   BIGINT       NOT NULL,
    stock_total   BIGINT       NOT NULL,
    stock_left    BIGINT       NOT NULL,
    starts_at     DATETIME     NOT NULL,
    ends_at       DATETIME     NOT NULL,
    purchase_rate BIGINT       NOT NULL DEFAULT 0,
    version       BIGINT       NOT NULL DEFAULT 1,
    created_at    DATETIME     NOT NULL,
    updated_at    DATETIME     NOT NULL,
    CONSTRAINT items_stock_left_nonneg CHECK (stock_left >= 0),
    CONSTRAINT items_stock_left_le_total CHECK (stock_left <= stock_total)
);
CREATE INDEX IF NOT EXISTS items_starts_at ON items (starts_at, id);

CREATE TABLE IF NOT EXISTS orders (
    id           INTEGER      PRIMARY KEY AUTOINCREMENT,
    order_id     VARCHAR(64)  NOT NULL,
    item_id      BIGINT       NOT NULL,
    user_id      VARCHAR(64)  NOT NULL,
    price_cents  BIGINT       NOT NULL,
    status       VARCHAR(16)  NOT NULL,
    reason       VARCHAR(255) NOT NULL DEFAULT '',
    created_at   DATETIME     NOT NULL,
    confirmed_at DATETIME     NULL,
    updated_at   DATETIME     NOT NULL,
    CONSTRAINT orders_order_id UNIQUE (order_id),
    CONSTRAINT orders_user_item UNIQUE (user_id, item_id)
);
CREATE INDEX IF NOT EXISTS orders_item_status ON orders (item_id, status);

-- One row per applied keyed restock: the primary key is what makes
-- Catalog.Restock apply a key at most once.
CREATE TABLE IF NOT EXISTS restocks (
    idempotency_key VARCHAR(128) NOT NULL PRIMARY KEY,
    item_id         BIGINT       NOT NULL,
    added           BIGINT       NOT NULL,
    created_at      DATETIME     NOT NULL
);
CREATE INDEX IF NOT EXISTS restocks_item ON restocks (item_id);
