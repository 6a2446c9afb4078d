package fairness

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"seckill/domain/sale"
)

type fakeItems map[sale.ItemID]sale.Item

func (f fakeItems) Item(_ context.Context, id sale.ItemID) (sale.Item, error) {
	it, ok := f[id]
	if !ok {
		return sale.Item{}, sale.ErrNotFound
	}
	return it, nil
}
func (f fakeItems) Items(context.Context) ([]sale.Item, error) { return nil, nil }

type fakeOnce struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (f *fakeOnce) Once(_ context.Context, key string, _ time.Duration) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen == nil {
		f.seen = map[string]bool{}
	}
	if f.seen[key] {
		return false, nil
	}
	f.seen[key] = true
	return true, nil
}

type fakeBlocks struct{ list []sale.Blocked }

func (f *fakeBlocks) Block(_ context.Context, u sale.UserID, r string) (bool, error) {
	f.list = append(f.list, sale.Blocked{User: u, Reason: r})
	return true, nil
}
func (f *fakeBlocks) Unblock(context.Context, sale.UserID) (bool, error) { return true, nil }
func (f *fakeBlocks) Blocklist(context.Context) ([]sale.Blocked, error) {
	return f.list, nil
}

// clock is a fake clock the tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }
func newClock(t time.Time) *clock    { return &clock{now: t} }
func powItem(id sale.ItemID, rate int64) sale.Item {
	return sale.Item{ID: id, Name: "x", StartsAt: t0, EndsAt: t0.Add(time.Hour), PurchaseRate: rate, Protection: sale.ProtectionPoW}
}

var t0 = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

func newTestService(c *clock, items fakeItems) *Service {
	return New(Deps{Items: items, Once: &fakeOnce{}, Blocks: &fakeBlocks{}}, Options{
		Secret: "test-secret-0123456789", MinDifficulty: 8, MaxDifficulty: 14, Window: 5 * time.Second,
		AdmittedRate: 1000, TicketLead: 10 * time.Second, Now: c.Now,
	})
}

// TestDifficultyAdaptsToPressure drives a fake clock: at rest the
// challenge asks the base difficulty; as requests per second rise past the
// item's purchase rate it adds a bit per doubling, never past the maximum;
// and once the rush is over (the window has slid past it) it falls back.
func TestDifficultyAdaptsToPressure(t *testing.T) {
	c := newClock(t0.Add(time.Minute))
	it := powItem(7, 10) // admits 10 attempts/s at the base difficulty
	s := newTestService(c, fakeItems{7: it})
	ctx := context.Background()
	ask := func() int {
		t.Helper()
		ch, err := s.Challenge(ctx, "alice", 7)
		if err != nil {
			t.Fatal(err)
		}
		return ch.Difficulty
	}
	if d := ask(); d != 8 {
		t.Fatalf("at rest: difficulty %d, want the base 8", d)
	}
	// Free requests are no pressure: a flood of challenges and of
	// purchases without a ticket leaves the price where it was.
	for range 1000 {
		ask()
		if _, err := s.Admit("bob", it, "", c.Now()); err == nil {
			t.Fatal("admitted without a ticket")
		}
		if _, err := s.Admit("bob", it, "forged", c.Now()); err == nil {
			t.Fatal("admitted with a forged ticket")
		}
	}
	if d := ask(); d != 8 {
		t.Fatalf("after a flood of unproven requests: difficulty %d, want still 8", d)
	}
	// Proven attempts are: 5 s at 40 purchases/s with a genuine ticket (4x
	// the purchase rate) is two doublings, +2 bits.
	tk := s.mint.ticketFor(7, "bob", c.Now().Add(time.Hour))
	for range 5 {
		for range 40 {
			if _, err := s.Admit("bob", it, tk, c.Now()); err != nil {
				t.Fatal(err)
			}
		}
		c.Add(time.Second)
	}
	if d := s.Difficulty(it, c.Now()); d != 10 {
		t.Fatalf("at 4x the purchase rate: difficulty %d, want 10", d)
	}
	// A flood of 100000 attempts in one second goes to the cap, not beyond.
	for range 100000 {
		_, _ = s.Admit("bob", it, tk, c.Now()) // only the pressure it adds counts here
	}
	if d := ask(); d != 14 {
		t.Fatalf("in a flood: difficulty %d, want the maximum 14", d)
	}
	// The issued challenge carries the difficulty of its moment: a proof for
	// a lower one is refused even after the pressure falls.
	hard, err := s.Challenge(ctx, "carol", 7)
	if err != nil || hard.Difficulty != 14 {
		t.Fatalf("challenge in the flood: %+v %v", hard, err)
	}
	c.Add(6 * time.Second)
	if d := ask(); d != 8 {
		t.Fatalf("after the window slid past the flood: difficulty %d, want 8", d)
	}
	weak := solveBelow(hard.Challenge, 14)
	if _, err := s.IssueTicket(ctx, "carol", 7, hard.Challenge, weak); !errors.Is(err, sale.ErrInvalidChallenge) {
		t.Fatalf("proof short of the signed difficulty: %v, want ErrInvalidChallenge", err)
	}
	// Another item's pressure is its own.
	other := powItem(8, 10)
	if d := s.Difficulty(other, c.Now()); d != 8 {
		t.Fatalf("untouched item: difficulty %d", d)
	}
}

// solveBelow finds a nonce that meets 8 bits but not want.
func solveBelow(ch string, want int) string {
	for j := uint64(0); ; j++ {
		n := strconv.FormatUint(j, 10)
		if b := LeadingZeroBits(ch, n); b >= 8 && b < want {
			return n
		}
	}
}

// ticketFor mints a ticket directly, for tests that need many.
func (m minter) ticketFor(item sale.ItemID, user sale.UserID, exp time.Time) string {
	t, _ := m.ticket(item, user, exp)
	return t
}

// TestTicketsAndChallenges covers every refusal of the ticket and challenge
// steps, and the purchase check (Admit).
func TestTicketsAndChallenges(t *testing.T) {
	c := newClock(t0.Add(time.Minute))
	pow := powItem(1, 0)
	tick := sale.Item{ID: 2, StartsAt: t0, EndsAt: t0.Add(time.Hour), Protection: sale.ProtectionTicket}
	plain := sale.Item{ID: 3, StartsAt: t0, EndsAt: t0.Add(time.Hour), Protection: sale.ProtectionNone}
	later := sale.Item{ID: 4, StartsAt: t0.Add(time.Hour), EndsAt: t0.Add(2 * time.Hour), Protection: sale.ProtectionTicket}
	s := newTestService(c, fakeItems{1: pow, 2: tick, 3: plain, 4: later})
	ctx := context.Background()

	// Unprotected: no ticket needed, none issued.
	if _, err := s.Admit("alice", plain, "", c.Now()); err != nil {
		t.Fatalf("plain item: %v", err)
	}
	if _, err := s.IssueTicket(ctx, "alice", 3, "", ""); !errors.Is(err, sale.ErrInvalid) {
		t.Fatalf("ticket for a plain item: %v", err)
	}
	if _, err := s.Challenge(ctx, "alice", 2); !errors.Is(err, sale.ErrInvalid) {
		t.Fatalf("challenge for a ticket item: %v", err)
	}
	if _, err := s.IssueTicket(ctx, "alice", 4, "", ""); !errors.Is(err, sale.ErrNotStarted) {
		t.Fatalf("ticket an hour early: %v", err)
	}
	if _, err := s.IssueTicket(ctx, "alice", 99, "", ""); !errors.Is(err, sale.ErrNotFound) {
		t.Fatalf("unknown item: %v", err)
	}

	// Ticket item.
	if _, err := s.Admit("alice", tick, "", c.Now()); !errors.Is(err, sale.ErrTicketRequired) {
		t.Fatalf("no ticket: %v", err)
	}
	tk, err := s.IssueTicket(ctx, "alice", 2, "", "")
	if err != nil || tk.ExpiresAt.Sub(c.Now()) > MaxTicketTTL {
		t.Fatalf("ticket: %+v %v", tk, err)
	}
	got, err := s.Admit("alice", tick, tk.Ticket, c.Now())
	if err != nil || got.ID == "" || !got.ExpiresAt.Equal(tk.ExpiresAt) {
		t.Fatalf("own ticket: %+v %v", got, err)
	}
	forged := tk.Ticket[:len(tk.Ticket)-1] + "A"
	if forged == tk.Ticket {
		forged = tk.Ticket[:len(tk.Ticket)-1] + "B"
	}
	for name, tc := range map[string]struct {
		user  sale.UserID
		item  sale.Item
		token string
	}{
		"another user": {"bob", tick, tk.Ticket},
		"another item": {"alice", sale.Item{ID: 4, StartsAt: t0, EndsAt: t0.Add(time.Hour), Protection: sale.ProtectionTicket}, tk.Ticket},
		"forged":       {"alice", tick, forged},
		"garbage":      {"alice", tick, "not-a-ticket"},
	} {
		if _, err := s.Admit(tc.user, tc.item, tc.token, c.Now()); !errors.Is(err, sale.ErrInvalidTicket) {
			t.Errorf("%s: %v, want ErrInvalidTicket", name, err)
		}
	}
	c.Add(31 * time.Second)
	if _, err := s.Admit("alice", tick, tk.Ticket, c.Now()); !errors.Is(err, sale.ErrInvalidTicket) {
		t.Fatalf("expired ticket: %v", err)
	}

	// Pow item.
	ch, err := s.Challenge(ctx, "alice", 1)
	if err != nil || ch.Difficulty != 8 {
		t.Fatalf("challenge: %+v %v", ch, err)
	}
	if _, err := s.IssueTicket(ctx, "alice", 1, "", ""); !errors.Is(err, sale.ErrInvalid) {
		t.Fatalf("pow ticket without a challenge: %v", err)
	}
	if _, err := s.IssueTicket(ctx, "alice", 1, ch.Challenge, "12x"); !errors.Is(err, sale.ErrInvalid) {
		t.Fatalf("malformed nonce: %v", err)
	}
	bad := "0"
	for LeadingZeroBits(ch.Challenge, bad) >= 8 {
		bad += "1"
	}
	if _, err := s.IssueTicket(ctx, "alice", 1, ch.Challenge, bad); !errors.Is(err, sale.ErrInvalidChallenge) {
		t.Fatalf("unsolved: %v", err)
	}
	nonce := Solve(ch.Challenge, ch.Difficulty)
	if _, err := s.IssueTicket(ctx, "bob", 1, ch.Challenge, nonce); !errors.Is(err, sale.ErrInvalidChallenge) {
		t.Fatalf("someone else's challenge: %v", err)
	}
	ptk, err := s.IssueTicket(ctx, "alice", 1, ch.Challenge, nonce)
	if err != nil {
		t.Fatalf("solved: %v", err)
	}
	if _, err := s.Admit("alice", pow, ptk.Ticket, c.Now()); err != nil {
		t.Fatalf("pow ticket at purchase: %v", err)
	}
	if _, err := s.IssueTicket(ctx, "alice", 1, ch.Challenge, nonce); !errors.Is(err, sale.ErrInvalidChallenge) {
		t.Fatalf("challenge used twice: %v", err)
	}
	ch2, _ := s.Challenge(ctx, "alice", 1)
	c.Add(61 * time.Second)
	if _, err := s.IssueTicket(ctx, "alice", 1, ch2.Challenge, Solve(ch2.Challenge, ch2.Difficulty)); !errors.Is(err, sale.ErrInvalidChallenge) {
		t.Fatalf("expired challenge: %v", err)
	}
}

// TestBlocklist: a block applies here at once and is broadcast; a reload
// replaces the copy with the durable list.
func TestBlocklist(t *testing.T) {
	c := newClock(t0.Add(time.Minute))
	blocks := &fakeBlocks{}
	var told []string
	s := New(Deps{Items: fakeItems{1: powItem(1, 0)}, Once: &fakeOnce{}, Blocks: blocks, Notify: blockedFunc(func(u sale.UserID, b bool) {
		if b {
			told = append(told, "+"+string(u))
		} else {
			told = append(told, "-"+string(u))
		}
	})}, Options{Secret: "s-0123456789abcdef", Now: c.Now})
	ctx := context.Background()
	if _, err := s.Block(ctx, "mallory", "scalper"); err != nil {
		t.Fatal(err)
	}
	if !s.Blocked("mallory") || s.Blocked("alice") {
		t.Fatal("block not applied locally")
	}
	if _, err := s.Challenge(ctx, "mallory", 1); !errors.Is(err, sale.ErrBlocked) {
		t.Fatalf("blocked challenge: %v", err)
	}
	if _, err := s.IssueTicket(ctx, "mallory", 1, "", ""); !errors.Is(err, sale.ErrBlocked) {
		t.Fatalf("blocked ticket: %v", err)
	}
	if _, err := s.Unblock(ctx, "mallory"); err != nil || s.Blocked("mallory") {
		t.Fatalf("unblock: %v", err)
	}
	if len(told) != 2 || told[0] != "+mallory" || told[1] != "-mallory" {
		t.Fatalf("broadcasts %v", told)
	}
	// Another instance's block arrives by broadcast (Apply) or reload.
	s.Apply("eve", true)
	if !s.Blocked("eve") || s.BlockedCount() != 1 {
		t.Fatal("apply")
	}
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	// The fake store still lists mallory (its Unblock is a no-op) and not eve.
	if !s.Blocked("mallory") || s.Blocked("eve") {
		t.Fatal("reload did not replace the copy with the durable list")
	}
}

// slowBlocks is a durable blocklist whose reads wait: each Blocklist call
// reads the list, then hands the test a channel on entered and returns
// what it read once the test closes that channel.
type slowBlocks struct {
	fakeBlocks
	entered chan chan struct{}
}

func (f *slowBlocks) Blocklist(context.Context) ([]sale.Blocked, error) {
	read := slices.Clone(f.list)
	release := make(chan struct{})
	f.entered <- release
	<-release
	return read, nil
}

// TestReloadKeepsChangesAppliedDuringIt: a block broadcast that arrives
// while a reload is reading the durable list (which it read before the
// block was written) survives the reload, as does an unblock; and a slow
// reload that started first cannot replace the list of one that started
// after it.
func TestReloadKeepsChangesAppliedDuringIt(t *testing.T) {
	blocks := &slowBlocks{fakeBlocks: fakeBlocks{list: []sale.Blocked{{User: "old"}, {User: "pardoned"}}},
		entered: make(chan chan struct{})}
	s := New(Deps{Items: fakeItems{}, Once: &fakeOnce{}, Blocks: blocks}, Options{Secret: "s-0123456789abcdef", Now: newClock(t0).Now})
	reload := func() chan error {
		done := make(chan error, 1)
		go func() { done <- s.Reload(context.Background()) }()
		return done
	}

	done := reload()
	release := <-blocks.entered // it has read the list: old, pardoned
	s.Apply("mallory", true)
	s.Apply("pardoned", false)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !s.Blocked("mallory") || s.Blocked("pardoned") || !s.Blocked("old") {
		t.Fatalf("after the reload: mallory %v (want blocked), pardoned %v (want not), old %v (want blocked)",
			s.Blocked("mallory"), s.Blocked("pardoned"), s.Blocked("old"))
	}

	// Two reloads: the first reads a stale list and finishes last.
	blocks.list = []sale.Blocked{{User: "old"}}
	first := reload()
	releaseFirst := <-blocks.entered
	blocks.list = []sale.Blocked{{User: "old"}, {User: "newer"}}
	second := reload()
	close(<-blocks.entered)
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	close(releaseFirst)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if !s.Blocked("newer") || s.Blocked("mallory") {
		t.Fatalf("after two reloads: newer %v (want blocked, from the later read), mallory %v (want not: the durable list never had it)",
			s.Blocked("newer"), s.Blocked("mallory"))
	}
}

// TestLeadingZeroBits pins the proof's measure on known digests.
func TestLeadingZeroBits(t *testing.T) {
	// SHA-256("abc") starts ba78...: no leading zero bit.
	if n := LeadingZeroBits("ab", "c"); n != 0 {
		t.Fatalf("abc: %d", n)
	}
	ch := "challenge-x"
	n := Solve(ch, 12)
	if LeadingZeroBits(ch, n) < 12 {
		t.Fatal("Solve returned an unsolved nonce")
	}
}

// blockedFunc lets a func stand for the notifier.
type blockedFunc func(user sale.UserID, blocked bool)

func (f blockedFunc) Blocked(user sale.UserID, blocked bool) { f(user, blocked) }
