package lab

import "testing"

// TestLabQueue: on the same crowd, fast retriers win more than their share
// of units from the plain sale and no more than about their share from
// the waiting room.
func TestLabQueue(t *testing.T) {
	runLab(t, "queue", 0.3, func(t *testing.T, rep Report) {
		if rep.Unprotected.Metric < 1.3 {
			t.Errorf("the plain sale gave fast retriers only %.2f times their share of units", rep.Unprotected.Metric)
		}
	})
}
