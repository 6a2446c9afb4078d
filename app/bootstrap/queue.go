package bootstrap

import (
	"seckill/app/config"
	"seckill/app/waitroom"
	"seckill/infra/redisline"
)

// buildQueue builds the waiting rooms: lines in Redis beside the stock
// ledger (same prefix, same slot per item), admissions signed by the
// fair-sale service.
func (m *Main) buildQueue(cfg config.Config) {
	m.Queue = waitroom.New(waitroom.Deps{
		Items: m.local, Line: redisline.New(m.rdb, cfg.RedisPrefix), Fair: m.Fair,
	}, waitroom.Options{})
}
