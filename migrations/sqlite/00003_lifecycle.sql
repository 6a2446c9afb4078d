-- Orders are paid, cancelled or expire. Kept in step with
-- mysql/00003_lifecycle.sql; see that file for why. SQLite supports ADD
-- COLUMN, so no table rebuild is needed this time.

-- As in MySQL, orders confirmed before this migration were completed sales
-- and become 'paid'.

-- +goose Up
ALTER TABLE orders ADD COLUMN pay_by DATETIME NULL;
ALTER TABLE orders ADD COLUMN paid_at DATETIME NULL;
ALTER TABLE orders ADD COLUMN payment_ref VARCHAR(128) NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS orders_status_pay_by ON orders (status, pay_by);
CREATE INDEX IF NOT EXISTS orders_status_updated ON orders (status, updated_at);
UPDATE orders SET status = 'paid', paid_at = confirmed_at, payment_ref = 'before-payments' WHERE status = 'confirmed';
