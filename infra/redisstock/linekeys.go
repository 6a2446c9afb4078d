package redisstock

import "seckill/domain/sale"

// LineKeys names, for a Store with this prefix, the item's sale hash and
// buyers hash (bucket 0), which the waiting room (infra/redisline) reads in
// the same slot to admit no more buyers than there are units and to tell a
// used admission from an unused one. It is the one place that promise is
// made: a renamed ledger key changes it here too.
func LineKeys(prefix string, id sale.ItemID) (saleKey, buyersKey string) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	k := (&Store{prefix: prefix}).item(id)
	return k.sale(), k.buyers()
}
