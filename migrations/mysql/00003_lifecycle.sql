-- Orders are paid, cancelled or expire. Kept in step with
-- sqlite/00003_lifecycle.sql.
--
-- 1. pay_by is the payment deadline, set when the order is confirmed
--    (confirmed_at + --payment-window). paid_at and payment_ref record a
--    payment. A confirmed order leaves 'confirmed' only through one
--    conditional UPDATE (... WHERE status = 'confirmed'), so pay, cancel and
--    expire can never both win.
-- 2. orders_status_pay_by serves the expiry scan
--    (status = 'confirmed' AND pay_by <= now ORDER BY pay_by), which must
--    stay cheap however many orders are paid or expired.
-- 3. orders_status_updated serves the return sweeper (cancelled or expired
--    orders updated in the last minutes), which runs every second.
-- 4. holder stays set on cancelled and expired orders: a buyer who let an
--    order lapse keeps their slot in UNIQUE (item_id, holder) and cannot buy
--    the same item again (see docs/PURCHASE-PATH.md).

-- 5. Orders confirmed before this migration were completed sales: there was
--    no payment step. They become 'paid' (paid_at = confirmed_at), so they
--    keep their unit and never expire; a NULL pay_by would otherwise leave
--    them confirmed forever, neither payable nor expirable.

-- +goose Up
ALTER TABLE orders ADD COLUMN pay_by DATETIME(3) NULL AFTER confirmed_at;
ALTER TABLE orders ADD COLUMN paid_at DATETIME(3) NULL AFTER pay_by;
ALTER TABLE orders ADD COLUMN payment_ref VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '' AFTER paid_at;
ALTER TABLE orders ADD KEY orders_status_pay_by (status, pay_by);
ALTER TABLE orders ADD KEY orders_status_updated (status, updated_at);
UPDATE orders SET status = 'paid', paid_at = confirmed_at, payment_ref = 'before-payments' WHERE status = 'confirmed';
