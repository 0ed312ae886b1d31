package publish

import (
	"time"

	"github.com/cdcrelay/cdcrelay/flow"
)

// window is the bounded ring of items the pipeline holds, from Submit until
// the checkpoint releases them after the flip. Positions are absolute
// counters; each item passes through them in order:
//
//	released ≤ taken ≤ resolved ≤ sent ≤ added,  added − released ≤ len(items)
//
// sent: published in the open batch (or skipped: marks, local dead
// letters); resolved: stored or dead-lettered; taken: handed to the
// checkpoint; released: flipped and forgotten. A batch that breaks moves
// sent back to resolved. window does no locking: Pipeline guards it with its
// mutex.
type window struct {
	items []flow.Item
	// seq is an item's sequence in the open batch, 0 for items that are
	// not messages; valid for positions in [resolved, sent).
	seq      []uint32
	sentAt   []time.Time
	maxBytes int64

	added, sent, resolved, taken, released uint64
	bytes                                  int64
	// blocked: a Submit waits for room, for an item of need bytes. Atomic
	// mode reads them to tell a transaction larger than the window from one
	// still arriving.
	blocked bool
	need    int64
}

func newWindow(maxCount int, maxBytes int64) *window {
	return &window{
		items:    make([]flow.Item, maxCount),
		seq:      make([]uint32, maxCount),
		sentAt:   make([]time.Time, maxCount),
		maxBytes: maxBytes,
	}
}

func (w *window) slot(pos uint64) int { return int(pos % uint64(len(w.items))) }

// fits reports whether an item of the given size can be added now. One item
// always fits into an empty window, however large, so that a single event
// bigger than the byte budget cannot wedge the relay.
func (w *window) fits(size int64) bool {
	n := w.added - w.released
	if n == 0 {
		return true
	}
	return n < uint64(len(w.items)) && w.bytes+size <= w.maxBytes
}

func (w *window) add(it flow.Item) {
	i := w.slot(w.added)
	w.items[i] = it
	w.added++
	w.blocked = false
	w.bytes += it.Size()
}

// release forgets the n oldest taken items.
func (w *window) release(n int) {
	for k := 0; k < n && w.released < w.taken; k++ {
		i := w.slot(w.released)
		w.bytes -= w.items[i].Size()
		w.items[i] = flow.Item{}
		w.released++
	}
}

// take copies up to cap(buf)-len(buf) resolved items into buf for the checkpoint.
func (w *window) take(buf []flow.Item) []flow.Item {
	for w.taken < w.resolved && len(buf) < cap(buf) {
		buf = append(buf, w.items[w.slot(w.taken)])
		w.taken++
	}
	return buf
}

// oldestCommit is the commit time of the oldest unreleased mark that has one.
func (w *window) oldestCommit() time.Time {
	for pos := w.released; pos < w.added; pos++ {
		if it := w.items[w.slot(pos)]; it.Event == nil && !it.Committed.IsZero() {
			return it.Committed
		}
	}
	return time.Time{}
}

// stuck reports whether the waiting Submit's item cannot come in even once
// everything sent is released: the window then holds nothing else it could
// give back.
func (w *window) stuck() bool { return w.blocked && w.released == w.sent && !w.fits(w.need) }

// inFlight is the number of items not yet released, and their bytes.
func (w *window) inFlight() (int, int64) { return int(w.added - w.released), w.bytes }
