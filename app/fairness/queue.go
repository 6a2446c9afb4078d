package fairness

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"seckill/domain/sale"
)

// The admissions of a waiting room (app/waitroom) are tickets of their own
// kind, "q": a ticket issued for a ticket or pow item can never pass for an
// admission, nor the other way round, even if the item's protection
// changes while both are alive. Their single use is the ledger's, like any
// ticket's (sale.Order.Ticket).

// Admission returns the admission ticket of user for item, expiring at
// expires. It is deterministic: every instance, asked again and again,
// returns the same ticket for the same admission, so a buyer who polls two
// instances holds one ticket, used once.
func (s *Service) Admission(user sale.UserID, item sale.ItemID, expires time.Time) string {
	ms := strconv.FormatInt(expires.UnixMilli(), 10)
	h := hmac.New(sha256.New, s.mint.key)
	h.Write([]byte("qid|" + item.String() + "|" + string(user) + "|" + ms))
	id := hex.EncodeToString(h.Sum(nil)[:12])
	return ms + "." + id + "." + s.mint.sign("q", item.String(), string(user), ms, id)
}

// admitQueued checks the admission a purchase of a queue item carries: none,
// forged, expired, another user's or another item's is
// sale.ErrNotAdmitted.
func (s *Service) admitQueued(user sale.UserID, it sale.Item, token string, now time.Time) (sale.Ticket, error) {
	t, ok := s.mint.checkKind("q", token, it.ID, user, now)
	if !ok {
		return sale.Ticket{}, sale.ErrNotAdmitted
	}
	return t, nil
}
