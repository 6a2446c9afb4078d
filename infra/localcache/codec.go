package localcache

import (
	"encoding/binary"
	"errors"
	"time"

	"seckill/domain/sale"
)

// An entry is: one kind byte, eight bytes of expiry (unix nanoseconds, big
// endian), then for kindItem the item's fields as varints and
// length-prefixed strings. A hand-written layout because decoding it is the
// whole cost of a local hit, and it runs at the rate of page views.
const (
	kindItem    byte = 1
	kindMissing byte = 2
	headerLen        = 9
	// codecVersion leads the item body so that a layout change can never be
	// misread; entries live only in this process, so it is belt and braces.
	codecVersion byte = 3
)

var errCorrupt = errors.New("localcache: corrupt entry")

func encodeEntry(kind byte, expires int64, it sale.Item) []byte {
	b := make([]byte, headerLen, headerLen+64+len(it.Name)+len(it.Description))
	b[0] = kind
	binary.BigEndian.PutUint64(b[1:9], uint64(expires)) //nolint:gosec // G115: the bits are stored as they are and decodeHeader turns them back
	if kind != kindItem {
		return b
	}
	b = append(b, codecVersion)
	b = binary.AppendVarint(b, int64(it.ID))
	b = appendString(b, it.Name)
	b = appendString(b, it.Description)
	b = binary.AppendVarint(b, it.PriceCents)
	b = binary.AppendVarint(b, it.StockTotal)
	b = binary.AppendVarint(b, it.StockLeft)
	b = appendTime(b, it.StartsAt)
	b = appendTime(b, it.EndsAt)
	b = binary.AppendVarint(b, it.PurchaseRate)
	b = appendString(b, string(it.Protection))
	b = binary.AppendVarint(b, it.Version)
	b = appendTime(b, it.CreatedAt)
	b = appendTime(b, it.UpdatedAt)
	b = binary.AppendVarint(b, int64(it.StockBuckets))
	b = binary.AppendVarint(b, it.AdmitPerSecond)
	b = binary.AppendVarint(b, it.MaxActive)
	return b
}

func decodeHeader(b []byte) (kind byte, expires int64, body []byte, err error) {
	if len(b) < headerLen {
		return 0, 0, nil, errCorrupt
	}
	return b[0], int64(binary.BigEndian.Uint64(b[1:9])), b[headerLen:], nil //nolint:gosec // G115: undoes encodeEntry's uint64(expires), bit for bit
}

// decodeItem copies everything it returns out of b, which belongs to the
// cache and is only valid during the callback.
func decodeItem(b []byte) (sale.Item, error) {
	if len(b) == 0 || b[0] != codecVersion {
		return sale.Item{}, errCorrupt
	}
	d := decoder{b: b[1:]}
	it := sale.Item{
		ID:           sale.ItemID(d.varint()),
		Name:         d.string(),
		Description:  d.string(),
		PriceCents:   d.varint(),
		StockTotal:   d.varint(),
		StockLeft:    d.varint(),
		StartsAt:     d.time(),
		EndsAt:       d.time(),
		PurchaseRate: d.varint(),
		Protection:   sale.Protection(d.string()),
		Version:      d.varint(),
		CreatedAt:    d.time(),
		UpdatedAt:    d.time(),
		StockBuckets: int(d.varint()),

		AdmitPerSecond: d.varint(),
		MaxActive:      d.varint(),
	}
	if d.err != nil || len(d.b) != 0 {
		return sale.Item{}, errCorrupt
	}
	return it, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendTime keeps the instant to the nanosecond; the zone is not kept and
// times come back in UTC, which is what every adapter in this project uses.
// A zero time is a lone 0 so it round-trips as IsZero.
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond())) //nolint:gosec // G115: Nanosecond is in [0, 1e9)
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errCorrupt
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) time() time.Time {
	if d.err != nil {
		return time.Time{}
	}
	if len(d.b) == 0 {
		d.err = errCorrupt
		return time.Time{}
	}
	flag := d.b[0]
	d.b = d.b[1:]
	switch flag {
	case 0:
		return time.Time{}
	case 1:
		sec := d.varint()
		nsec := d.uvarint()
		if nsec >= 1e9 {
			d.err = errCorrupt
			return time.Time{}
		}
		return time.Unix(sec, int64(nsec)).UTC()
	}
	d.err = errCorrupt
	return time.Time{}
}
