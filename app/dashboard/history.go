package dashboard

import "sync"

// HistoryFrames is how many frames a History keeps by default: two minutes
// at one a second, what the page's charts show.
const HistoryFrames = 120

// History is the last frames of one instance, oldest first, shared by every
// viewer: a page opened late (or reconnecting) draws them before the live
// ones, so it shows the minutes it missed instead of empty charts. It is
// safe for concurrent use.
type History struct {
	mu     sync.Mutex
	frames []Frame // at most size, oldest first, T strictly increasing
	size   int
	next   chan struct{} // closed by the next Add that keeps a frame
}

// NewHistory returns a history that keeps the last size frames (at least one).
func NewHistory(size int) *History {
	return &History{size: max(size, 1), next: make(chan struct{})}
}

// Add keeps f unless it is not newer than the last frame kept (a frame
// shared by two samplings of the same moment), dropping the oldest beyond
// the history's size. It reports whether f was kept.
func (h *History) Add(f Frame) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.frames); n > 0 && f.T <= h.frames[n-1].T {
		return false
	}
	if len(h.frames) == h.size {
		// Copied down rather than resliced, so the array does not grow
		// behind the window for as long as the instance runs.
		copy(h.frames, h.frames[1:])
		h.frames = h.frames[:h.size-1]
	}
	h.frames = append(h.frames, f)
	close(h.next)
	h.next = make(chan struct{})
	return true
}

// After returns the frames kept that are newer than t (Unix milliseconds;
// 0 for all of them), oldest first, and a channel closed when a newer frame
// is kept. The frames are a copy the caller may keep.
func (h *History) After(t int64) ([]Frame, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := len(h.frames)
	for i > 0 && h.frames[i-1].T > t {
		i--
	}
	return append([]Frame(nil), h.frames[i:]...), h.next
}
