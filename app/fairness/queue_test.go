package fairness

import (
	"errors"
	"testing"
	"time"

	"seckill/domain/sale"
)

// TestAdmission: a queue item is bought only with the admission its line
// gave this user for this item, unexpired; the admission is the same
// whichever instance mints it; and a purchase ticket never passes for an
// admission, nor an admission for a purchase ticket.
func TestAdmission(t *testing.T) {
	c := newClock(time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC))
	q := sale.Item{ID: 1, Protection: sale.ProtectionQueue, AdmitPerSecond: 10, StartsAt: c.Now(), EndsAt: c.Now().Add(time.Hour)}
	tk := sale.Item{ID: 2, Protection: sale.ProtectionTicket, StartsAt: c.Now(), EndsAt: c.Now().Add(time.Hour)}
	s := newTestService(c, fakeItems{1: q, 2: tk})
	other := newTestService(c, fakeItems{1: q, 2: tk})
	exp := c.Now().Add(2 * time.Minute)

	adm := s.Admission("alice", 1, exp)
	if adm != other.Admission("alice", 1, exp) {
		t.Fatal("two instances minted different admissions for one admission")
	}
	got, err := s.Admit("alice", q, adm, c.Now())
	if err != nil || got.ID == "" || !got.ExpiresAt.Equal(exp) {
		t.Fatalf("a valid admission: %+v %v", got, err)
	}
	refused := map[string]string{
		"none":              "",
		"another user's":    s.Admission("bob", 1, exp),
		"another item's":    s.Admission("alice", 2, exp),
		"a purchase ticket": s.mint.ticketFor(1, "alice", exp),
		"forged":            adm[:len(adm)-2] + "xx",
	}
	for what, token := range refused {
		if _, err := s.Admit("alice", q, token, c.Now()); !errors.Is(err, sale.ErrNotAdmitted) {
			t.Errorf("%s: %v, want ErrNotAdmitted", what, err)
		}
	}
	if _, err := s.Admit("alice", tk, s.Admission("alice", 2, exp), c.Now()); !errors.Is(err, sale.ErrInvalidTicket) {
		t.Errorf("an admission as a purchase ticket: %v, want ErrInvalidTicket", err)
	}
	c.Add(2 * time.Minute)
	if _, err := s.Admit("alice", q, adm, c.Now()); !errors.Is(err, sale.ErrNotAdmitted) {
		t.Errorf("an expired admission: %v, want ErrNotAdmitted", err)
	}
}
