package waitroom

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"seckill/domain/sale"
)

// TestPlacesRememberEachBuyer: a place and an admission come back as
// stored, per buyer, and clear forgets them all.
func TestPlacesRememberEachBuyer(t *testing.T) {
	p := newPlaces()
	until := time.Unix(1_800_000_000, 123456789)
	p.store("alice", sale.LinePlace{Place: 7})
	p.store("bob", sale.LinePlace{Place: 8, AdmittedUntil: until})
	if got, ok := p.load("alice"); !ok || got.Place != 7 || !got.AdmittedUntil.IsZero() {
		t.Errorf("alice: %+v %v, want place 7, never admitted", got, ok)
	}
	if got, ok := p.load("bob"); !ok || got.Place != 8 || !got.AdmittedUntil.Equal(until) {
		t.Errorf("bob: %+v %v, want place 8 admitted until %v", got, ok, until)
	}
	if _, ok := p.load("carol"); ok {
		t.Error("carol, who never joined, has a place")
	}
	p.store("alice", sale.LinePlace{Place: 7, AdmittedUntil: until})
	if got, _ := p.load("alice"); !got.AdmittedUntil.Equal(until) {
		t.Errorf("alice after her admission: %+v", got)
	}
	p.clear()
	if _, ok := p.load("bob"); ok {
		t.Error("bob's place survived clear")
	}
}

// TestPlacesCostLittleMemory: 100,000 buyers fit in well under the ~170
// bytes a buyer the sync.Map of LinePlace cost (measured), so a long line
// does not push an instance against its memory limit.
func TestPlacesCostLittleMemory(t *testing.T) {
	const n = 100_000
	ids := make([]sale.UserID, n)
	for i := range ids {
		ids[i] = sale.UserID(fmt.Sprintf("queue-buyer-%07d", i))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p := newPlaces()
	for i, id := range ids {
		p.store(id, sale.LinePlace{Place: int64(i + 1)})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perBuyer := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f bytes a buyer", perBuyer)
	if perBuyer > 100 {
		t.Errorf("%.0f bytes a buyer, want under 100", perBuyer)
	}
	for i, id := range ids {
		if got, ok := p.load(id); !ok || got.Place != int64(i+1) {
			t.Fatalf("%s: %+v %v", id, got, ok)
		}
	}
}
