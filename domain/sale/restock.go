package sale

// MaxRestockKeyLen is the longest restock idempotency key accepted.
const MaxRestockKeyLen = 100

// ParseRestockKey returns ErrInvalid unless s is 1 to 100 characters of
// visible ASCII (0x21 to 0x7E). Both stores key a restock by (item, key), so
// a key must be one that MySQL's column, a Redis hash field, an HTTP header
// and a log line all hold byte for byte; visible ASCII is what all four
// agree on without escaping or collation surprises.
func ParseRestockKey(s string) (string, error) {
	if len(s) == 0 || len(s) > MaxRestockKeyLen {
		return "", invalid("Idempotency-Key", "must be 1 to %d visible ASCII characters", MaxRestockKeyLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return "", invalid("Idempotency-Key", "must be 1 to %d visible ASCII characters", MaxRestockKeyLen)
		}
	}
	return s, nil
}
