package dashboard

import "testing"

func ts(frames []Frame) []int64 {
	out := make([]int64, len(frames))
	for i, f := range frames {
		out[i] = f.T
	}
	return out
}

func TestHistoryKeepsTheLastFramesInOrder(t *testing.T) {
	t.Parallel()
	h := NewHistory(3)
	all, next := h.After(0)
	if len(all) != 0 {
		t.Fatalf("a new history has frames: %v", ts(all))
	}
	for _, at := range []int64{10, 20, 30} {
		if !h.Add(Frame{T: at}) {
			t.Fatalf("frame %d not kept", at)
		}
	}
	select {
	case <-next:
	default:
		t.Fatal("the channel After returned was not closed by a newer frame")
	}
	if h.Add(Frame{T: 30}) || h.Add(Frame{T: 25}) {
		t.Error("a frame not newer than the last was kept")
	}
	h.Add(Frame{T: 40}) // beyond the size: 10 goes
	got, next := h.After(0)
	if want := []int64{20, 30, 40}; len(got) != 3 || got[0].T != 20 || got[2].T != 40 {
		t.Fatalf("After(0) = %v, want %v", ts(got), want)
	}
	if later, _ := h.After(30); len(later) != 1 || later[0].T != 40 {
		t.Errorf("After(30) = %v, want [40]", ts(later))
	}
	if none, _ := h.After(40); len(none) != 0 {
		t.Errorf("After(40) = %v, want none", ts(none))
	}
	got[0].T = 999 // a copy: the history is not changed through it
	if again, _ := h.After(0); again[0].T != 20 {
		t.Error("After's frames share the history's array")
	}
	select {
	case <-next:
		t.Fatal("the channel closed with no newer frame")
	default:
	}
}
