package sale

import (
	"hash/fnv"
	"math"
	"strconv"
)

// A hot item's stock can be split over several stock buckets, each a set of
// ledger keys with a hash tag of its own, so that the buckets land on
// different Redis Cluster slots (and, with the tags chosen below, on
// different masters) and one item's purchases are spread over several Redis
// threads. A buyer always buys from their home bucket, which holds their
// one-order-per-user record, so the rule and the stock deduction stay in one
// atomic script.

// MaxStockBuckets bounds an item's stock buckets. Sixteen covers every
// cluster this project is sized for (docs/SCALING.md); more buckets only make
// the sold-out check, which reads every bucket, slower.
const MaxStockBuckets = 16

// ClusterSlots is the number of Redis Cluster hash slots.
const ClusterSlots = 16384

// CheckStockBuckets returns ErrInvalid unless n is between 1 and
// MaxStockBuckets.
func CheckStockBuckets(n int) error {
	if n < 1 || n > MaxStockBuckets {
		return invalid("stock_buckets", "must be between 1 and %d", MaxStockBuckets)
	}
	return nil
}

// HomeBucket returns the bucket, in [0, n), that holds user's record and
// reservation on an item with n buckets: FNV-1a of the user id modulo n. It
// depends on nothing but its arguments, so every instance picks the same
// bucket for the same user, which is what keeps one order per user.
func HomeBucket(user UserID, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(user))
	return int(h.Sum32() % uint32(n)) //nolint:gosec // G115: n counts buckets (at most MaxStockBuckets), so the result is in [0, n)
}

// BucketTag returns the hash tag, without braces, of bucket b of item id
// among n buckets. Bucket 0 is always "item:<id>", the tag of an unsplit
// item, so an item with one bucket keeps exactly the keys it always had.
// Bucket b > 0 is the first "item:<id>:<b>.<j>", j = 0, 1, ..., whose slot
// falls in the slot range of its own master (SlotRange): the ranges other
// than bucket 0's, in order. So on a cluster whose n masters hold the even
// split that redis-cli --cluster create makes, every bucket has a master of
// its own. The choice is pure: no instance asks the cluster anything, and
// all of them agree. b outside [0, n) gives "".
func BucketTag(id ItemID, b, n int) string {
	base := "item:" + id.String()
	if b == 0 {
		return base
	}
	if b < 0 || b >= n || n > MaxStockBuckets {
		return ""
	}
	// Bucket 0 sits in range r0; the other buckets take the other ranges
	// in order, skipping r0.
	r0 := RangeOfSlot(KeySlot(base), n)
	want := b - 1
	if want >= r0 {
		want++
	}
	lo, hi := SlotRange(want, n)
	prefix := base + ":" + strconv.Itoa(b) + "."
	// A range holds at least 1/16 of the slots, so the expected number of
	// tries is at most 16, and 4096 tries miss with probability below
	// (15/16)^4096, i.e. never; the fallback only keeps the function total.
	for j := 0; j < 4096; j++ {
		tag := prefix + strconv.Itoa(j)
		if s := KeySlot(tag); s >= lo && s <= hi {
			return tag
		}
	}
	return prefix + "0"
}

// SlotRange returns the first and last slot of range k of n: the slots that
// redis-cli --cluster create gives the k-th of n masters (its rounding
// included, so the ranges match a real cluster's slot for slot).
func SlotRange(k, n int) (first, last int) {
	per := float64(ClusterSlots) / float64(n)
	first = 0
	if k > 0 {
		first = int(math.Round(float64(k)*per-1)) + 1
	}
	last = int(math.Round(float64(k+1)*per - 1))
	if k == n-1 {
		last = ClusterSlots - 1
	}
	return first, last
}

// RangeOfSlot returns the k for which slot lies in SlotRange(k, n).
func RangeOfSlot(slot, n int) int {
	for k := 0; k < n; k++ {
		if _, last := SlotRange(k, n); slot <= last {
			return k
		}
	}
	return n - 1
}

// KeySlot returns the Redis Cluster slot of a key: CRC16 (XMODEM) of the
// key, or of its hash tag (the text between the first '{' and the next '}',
// if not empty), modulo 16384. It is Redis's own rule, written out here so
// the domain can choose bucket tags without a Redis library.
func KeySlot(key string) int {
	if i := indexByte(key, '{'); i >= 0 {
		if j := indexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % ClusterSlots)
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), the checksum
// Redis Cluster hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
