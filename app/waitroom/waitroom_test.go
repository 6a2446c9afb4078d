package waitroom

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"seckill/domain/sale"
)

var t0 = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

type items map[sale.ItemID]sale.Item

func (m items) Item(_ context.Context, id sale.ItemID) (sale.Item, error) {
	if it, ok := m[id]; ok {
		return it, nil
	}
	return sale.Item{}, sale.ErrNotFound
}

func (m items) Items(context.Context) ([]sale.Item, error) { return nil, nil }

// fakeLine is the Redis line as a value the test sets, counting calls.
type fakeLine struct {
	mu            sync.Mutex
	st            sale.LineState
	places        map[sale.UserID]sale.LinePlace
	ticks, lookup int
	down          bool // Tick fails, as an unreachable Redis would
}

func (f *fakeLine) Join(_ context.Context, _ sale.ItemID, u sale.UserID, _ sale.LineConfig) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.places[u]; ok {
		return p.Place, nil
	}
	f.st.Tail++
	f.places[u] = sale.LinePlace{Place: f.st.Tail}
	return f.st.Tail, nil
}

func (f *fakeLine) Tick(context.Context, sale.ItemID, sale.LineConfig) (sale.LineState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ticks++
	if f.down {
		return sale.LineState{}, errors.New("redis down")
	}
	return f.st, nil
}

func (f *fakeLine) Place(_ context.Context, _ sale.ItemID, u sale.UserID) (sale.LinePlace, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookup++
	p, ok := f.places[u]
	if !ok {
		return sale.LinePlace{}, sale.ErrNotFound
	}
	return p, nil
}

type fakeGate struct{ blocked sale.UserID }

func (g fakeGate) Blocked(u sale.UserID) bool { return u == g.blocked }
func (g fakeGate) Admission(u sale.UserID, id sale.ItemID, exp time.Time) string {
	return string(u) + "@" + id.String() + "@" + exp.Format(time.RFC3339)
}

type fixture struct {
	s    *Service
	line *fakeLine
	now  time.Time
}

func newFixture() *fixture {
	f := &fixture{line: &fakeLine{places: map[sale.UserID]sale.LinePlace{}, st: sale.LineState{Shuffled: true, Stock: 10}}, now: t0.Add(time.Minute)}
	its := items{
		1: {ID: 1, Protection: sale.ProtectionQueue, AdmitPerSecond: 2, StartsAt: t0, EndsAt: t0.Add(time.Hour)},
		2: {ID: 2, Protection: sale.ProtectionNone, StartsAt: t0, EndsAt: t0.Add(time.Hour)},
	}
	f.s = New(Deps{Items: its, Line: f.line, Fair: fakeGate{blocked: "bad"}}, Options{Now: func() time.Time { return f.now }})
	return f
}

// TestPollsAreAnsweredFromTheCopy: a thousand polls within one refresh
// period cost one read of the line and one read per buyer's place; the
// next period costs one more read of the line.
func TestPollsAreAnsweredFromTheCopy(t *testing.T) {
	f := newFixture()
	ctx := context.Background()
	for _, u := range []sale.UserID{"a", "b", "c"} {
		if _, err := f.s.Join(ctx, u, 1); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 1000 {
		u := []sale.UserID{"a", "b", "c"}[i%3]
		if _, err := f.s.Poll(ctx, u, 1); err != nil {
			t.Fatal(err)
		}
	}
	if f.line.ticks != 1 || f.line.lookup != 0 {
		t.Fatalf("1000 polls in one period: %d line reads, %d place reads; want 1 and 0 (joined here)", f.line.ticks, f.line.lookup)
	}
	f.now = f.now.Add(DefaultRefreshEvery)
	if _, err := f.s.Poll(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	if f.line.ticks != 2 {
		t.Fatalf("the next period read the line %d times in all, want 2", f.line.ticks)
	}
}

// TestJoinsReadTheLineThroughTheCopy: a join asks Redis for its place
// only; the state its answer shows is this instance's copy of the line,
// read on the first join and then at most once per refresh period, however
// many buyers join.
func TestJoinsReadTheLineThroughTheCopy(t *testing.T) {
	f := newFixture()
	ctx := context.Background()
	f.line.mu.Lock()
	f.line.st.Served = 1 // the line has moved on: the first join reads it
	f.line.mu.Unlock()
	st, err := f.s.Join(ctx, "a", 1)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != StateWaiting || st.Position != 1 || f.line.ticks != 1 {
		t.Fatalf("first join, at place 1 with 1 served: %+v after %d line reads; want waiting at 1 (admitted, not yet read) and 1 read", st, f.line.ticks)
	}
	f.line.mu.Lock()
	f.line.st.Served = 0 // moved on in Redis: the copy keeps what it read
	f.line.mu.Unlock()
	for i := range 1000 {
		st, err := f.s.Join(ctx, sale.UserID(fmt.Sprintf("u%d", i)), 1)
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(i + 1); st.Position != want {
			t.Fatalf("join %d, at place %d: %+v, want position %d from the copy (1 served)", i, i+2, st, want)
		}
	}
	if f.line.ticks != 1 {
		t.Fatalf("1001 joins in one period read the line %d times, want 1", f.line.ticks)
	}
	f.now = f.now.Add(DefaultRefreshEvery)
	if st, err := f.s.Join(ctx, "u9", 1); err != nil || f.line.ticks != 2 || st.Position != 11 {
		t.Fatalf("joining again in the next period, at place 11: %+v, %v after %d line reads; want position 11 (0 served) and 2 reads", st, err, f.line.ticks)
	}
}

// TestStatus: waiting with position and ETA, admitted with the ticket,
// expired, sold out; and the refusals.
func TestStatus(t *testing.T) {
	f := newFixture()
	ctx := context.Background()
	for _, u := range []sale.UserID{"a", "b", "c", "d", "e"} {
		if _, err := f.s.Join(ctx, u, 1); err != nil {
			t.Fatal(err)
		}
	}
	exp := f.now.Add(2 * time.Minute)
	f.line.mu.Lock()
	f.line.st.Served = 2
	f.line.places["a"] = sale.LinePlace{Place: 1, AdmittedUntil: exp}
	f.line.places["b"] = sale.LinePlace{Place: 2, AdmittedUntil: f.now}
	f.line.mu.Unlock()
	f.now = f.now.Add(DefaultRefreshEvery) // the joins' copy is due again

	cases := []struct {
		u    sale.UserID
		want Status
	}{
		{"a", Status{State: StateAdmitted, Ticket: "a@1@" + exp.Format(time.RFC3339), ExpiresAt: exp}},
		{"b", Status{State: StateExpired}},
		{"c", Status{State: StateWaiting, Position: 1, ETA: time.Second}},
		{"e", Status{State: StateWaiting, Position: 3, ETA: 2 * time.Second}},
	}
	for _, c := range cases {
		got, err := f.s.Poll(ctx, c.u, 1)
		if err != nil || got != c.want {
			t.Errorf("%s: %+v %v, want %+v", c.u, got, err, c.want)
		}
	}
	f.line.mu.Lock()
	f.line.st.Stock = 0
	f.line.mu.Unlock()
	f.now = f.now.Add(DefaultRefreshEvery)
	if got, _ := f.s.Poll(ctx, "d", 1); got.State != StateSoldOut {
		t.Errorf("d after the sell-out: %+v, want sold_out", got)
	}
	if got, _ := f.s.Poll(ctx, "a", 1); got.State != StateAdmitted {
		t.Errorf("an admitted buyer after the sell-out: %+v, want still admitted", got)
	}

	if _, err := f.s.Join(ctx, "bad", 1); !errors.Is(err, sale.ErrBlocked) {
		t.Errorf("blocked join: %v", err)
	}
	if _, err := f.s.Join(ctx, "a", 2); !errors.Is(err, sale.ErrInvalid) {
		t.Errorf("join of an item without a line: %v", err)
	}
	if _, err := f.s.Poll(ctx, "stranger", 1); !errors.Is(err, ErrNotInLine) {
		t.Errorf("poll by a stranger: %v", err)
	}
	if _, err := f.s.Join(ctx, "a", 9); !errors.Is(err, sale.ErrNotFound) {
		t.Errorf("join of an unknown item: %v", err)
	}
}

// TestPreQueuePlaceIsReadAfterTheShuffle: a buyer who joined before the
// opening sees the pre-queue's size, and their real place once shuffled.
func TestPreQueuePlaceIsReadAfterTheShuffle(t *testing.T) {
	f := newFixture()
	ctx := context.Background()
	f.now = t0.Add(-10 * time.Second)
	f.line.st = sale.LineState{Pre: 4}
	f.line.places["p"] = sale.LinePlace{Place: 0}
	if _, err := f.line.Join(ctx, 1, "p", sale.LineConfig{}); err != nil { // already there: keeps place 0
		t.Fatal(err)
	}
	got, err := f.s.Join(ctx, "p", 1)
	if err != nil || got.State != StateWaiting || got.Position != 4 || got.ETA != 12*time.Second {
		t.Fatalf("before the opening: %+v %v, want waiting, position 4, eta 10 s + 2 s", got, err)
	}
	f.now = t0.Add(time.Second)
	f.line.mu.Lock()
	f.line.st = sale.LineState{Shuffled: true, Tail: 4, Pre: 4, Stock: 5}
	f.line.places["p"] = sale.LinePlace{Place: 3}
	f.line.mu.Unlock()
	if got, _ = f.s.Poll(ctx, "p", 1); got.Position != 3 {
		t.Fatalf("after the shuffle: %+v, want position 3", got)
	}
}

// TestRedisDown: with no copy of the line a join or a poll is
// ErrUnavailable, and the refused join took no place; with a copy, a failed
// refresh answers from the copy.
func TestRedisDown(t *testing.T) {
	f := newFixture()
	ctx := context.Background()
	f.line.down = true
	if _, err := f.s.Join(ctx, "a", 1); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("first join with the line unreadable and no copy: %v, want ErrUnavailable", err)
	}
	if _, held := f.line.places["a"]; held {
		t.Fatal("a join refused with 503 took a place in the line")
	}
	f.line.down = false
	if _, err := f.s.Join(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	f.line.down = true
	f2 := newFixture()
	f2.line.down = true
	f2.line.places["a"] = sale.LinePlace{Place: 1}
	if _, err := f2.s.Poll(ctx, "a", 1); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("first poll with Redis down: %v, want ErrUnavailable", err)
	}
	f.line.down = false
	if _, err := f.s.Poll(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	f.line.down = true
	f.now = f.now.Add(DefaultRefreshEvery)
	if got, err := f.s.Poll(ctx, "a", 1); err != nil || got.State != StateWaiting || got.Position != 1 {
		t.Fatalf("poll with Redis down and a copy: %+v %v, want the copy's answer", got, err)
	}
}

// TestLostLineForgetsPlaces: when the line comes back with a new Born mark
// (it was lost in a Redis wipe and begun again), a buyer this instance
// remembers hears not_in_line at their next poll, not their old position.
func TestLostLineForgetsPlaces(t *testing.T) {
	f := newFixture()
	ctx := context.Background()
	f.line.st.Born = 1
	if _, err := f.s.Join(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	if st, err := f.s.Poll(ctx, "a", 1); err != nil || st.State != StateWaiting {
		t.Fatalf("before the loss: %+v %v, want waiting", st, err)
	}
	f.line.mu.Lock()
	f.line.places = map[sale.UserID]sale.LinePlace{}
	f.line.st = sale.LineState{Shuffled: true, Stock: 10, Born: 2}
	f.line.mu.Unlock()
	f.now = f.now.Add(DefaultRefreshEvery)
	if st, err := f.s.Poll(ctx, "a", 1); !errors.Is(err, ErrNotInLine) {
		t.Fatalf("after the loss: %+v %v, want ErrNotInLine", st, err)
	}
	if _, err := f.s.Join(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	if st, err := f.s.Poll(ctx, "a", 1); err != nil || st.State != StateWaiting || st.Position != 1 {
		t.Fatalf("joined again: %+v %v, want waiting at 1", st, err)
	}
}

// countingItems counts item reads.
type countingItems struct {
	items
	mu    sync.Mutex
	reads int
}

func (c *countingItems) Item(ctx context.Context, id sale.ItemID) (sale.Item, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	return c.items.Item(ctx, id)
}

// TestPollsReadTheItemOncePerPeriod: polls within one refresh period read
// the item once, the next period once more; polls of an item that is not a
// queue item read it every time and keep no line for it.
func TestPollsReadTheItemOncePerPeriod(t *testing.T) {
	f := newFixture()
	its := &countingItems{items: items{
		1: {ID: 1, Protection: sale.ProtectionQueue, AdmitPerSecond: 2, StartsAt: t0, EndsAt: t0.Add(time.Hour)},
		2: {ID: 2, Protection: sale.ProtectionNone, StartsAt: t0, EndsAt: t0.Add(time.Hour)},
	}}
	f.s = New(Deps{Items: its, Line: f.line, Fair: fakeGate{}}, Options{Now: func() time.Time { return f.now }})
	ctx := context.Background()
	if _, err := f.s.Join(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	before := its.reads
	for range 100 {
		if _, err := f.s.Poll(ctx, "a", 1); err != nil {
			t.Fatal(err)
		}
	}
	if got := its.reads - before; got != 1 {
		t.Fatalf("100 polls in one period read the item %d times, want 1", got)
	}
	f.now = f.now.Add(DefaultRefreshEvery)
	if _, err := f.s.Poll(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	if got := its.reads - before; got != 2 {
		t.Fatalf("the next period: %d item reads in all, want 2", got)
	}
	for range 3 {
		if _, err := f.s.Poll(ctx, "a", 2); err == nil {
			t.Fatal("a poll of an item without a waiting room was answered")
		}
	}
	if _, ok := f.s.lines.Load(sale.ItemID(2)); ok {
		t.Fatal("a poll of an item without a waiting room left a line behind")
	}
}

// TestEndedLineIsForgotten: once the sale has ended, a poll answers ended
// without Redis, and the instance keeps neither the line's places nor its
// copy of the state; polls after that leave nothing behind either.
func TestEndedLineIsForgotten(t *testing.T) {
	f := newFixture()
	ctx := context.Background()
	for _, u := range []sale.UserID{"a", "b", "c"} {
		if _, err := f.s.Join(ctx, u, 1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.s.Poll(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	ticks, lookups := f.line.ticks, f.line.lookup
	f.now = t0.Add(time.Hour) // the item's end
	for _, u := range []sale.UserID{"a", "b", "never-joined"} {
		if st, err := f.s.Poll(ctx, u, 1); err != nil || st.State != StateEnded {
			t.Fatalf("%s after the end: %+v %v, want ended", u, st, err)
		}
		if _, ok := f.s.lines.Load(sale.ItemID(1)); ok {
			t.Fatalf("after %s's poll past the end the instance still keeps the line", u)
		}
	}
	if f.line.ticks != ticks || f.line.lookup != lookups {
		t.Fatalf("polls after the end read Redis: %d line reads, %d place reads", f.line.ticks-ticks, f.line.lookup-lookups)
	}
	if _, err := f.s.Join(ctx, "d", 1); !errors.Is(err, sale.ErrEnded) {
		t.Fatalf("join after the end: %v, want sale.ErrEnded", err)
	}
	if len(f.s.Lines()) != 0 {
		t.Fatalf("Lines after the end: %v, want none", f.s.Lines())
	}
}

// TestEndedLinesAreForgottenWithoutPolls: a line nobody polls after its
// sale's end (its buyers closed the page) is forgotten by the next poll of
// another line or the next read of Lines; a line still open is kept.
func TestEndedLinesAreForgottenWithoutPolls(t *testing.T) {
	f := newFixture()
	its := items{
		1: {ID: 1, Protection: sale.ProtectionQueue, AdmitPerSecond: 2, StartsAt: t0, EndsAt: t0.Add(time.Hour)},
		3: {ID: 3, Protection: sale.ProtectionQueue, AdmitPerSecond: 2, StartsAt: t0, EndsAt: t0.Add(2 * time.Minute)},
		4: {ID: 4, Protection: sale.ProtectionQueue, AdmitPerSecond: 2, StartsAt: t0, EndsAt: t0.Add(3 * time.Minute)},
	}
	f.s = New(Deps{Items: its, Line: f.line, Fair: fakeGate{}}, Options{Now: func() time.Time { return f.now }})
	ctx := context.Background()
	for _, id := range []sale.ItemID{1, 3, 4} {
		if _, err := f.s.Join(ctx, "a", id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.s.Poll(ctx, "a", 3); err != nil { // 4 is joined only
		t.Fatal(err)
	}
	f.now = t0.Add(2 * time.Minute)
	if _, err := f.s.Poll(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.s.lines.Load(sale.ItemID(3)); ok {
		t.Fatal("a poll of another line left the ended line 3 in memory")
	}
	f.now = t0.Add(3 * time.Minute)
	lines := f.s.Lines()
	if _, ok := f.s.lines.Load(sale.ItemID(4)); ok {
		t.Fatal("Lines left the ended line 4, joined and never polled, in memory")
	}
	if _, ok := lines[1]; !ok {
		t.Fatalf("Lines: %v, want line 1, still open", lines)
	}
}
