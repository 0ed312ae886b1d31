package slot

import (
	"sync"

	"github.com/jackc/pglogrepl"
)

// maxGates bounds the flips a position remembers while their WAL is not yet
// flushed. Past it the two newest are merged, which only asks more of the
// older one: memory stays bounded even if WAL stops being flushed.
const maxGates = 256

// position is the LSN one leadership term may confirm to the slot: the end
// of the last transaction whose every event, and every event before it, is
// acked and flipped, with the flip's WAL on disk.
//
// The WAL flush matters because PostgreSQL may save a slot's
// confirmed_flush to disk as soon as a confirm passes a restart-point
// candidate (LogicalConfirmReceivedLocation → ReplicationSlotSave), without
// flushing WAL. Flips and dead letters commit asynchronously, so a confirm
// that ran ahead of their flush could survive a crash that lost them: the
// row would stay unpublished forever, and a dead letter would be gone with
// its event. So every flip is a gate: the position it makes confirmable
// waits until WAL is known flushed past the flip's commit.
//
// A position belongs to one Session, one leadership term, and starts from
// that term's slot (Resume): nothing confirmed on another primary or before a
// crash carries over. It only moves forward. Safe for concurrent use: the
// checkpoint adds gates through Session.Ack, the session reports how far WAL
// is flushed and reads the position.
type position struct {
	mu          sync.Mutex
	confirmable pglogrepl.LSN
	flushed     pglogrepl.LSN
	written     pglogrepl.LSN // WAL end of the term's flips so far
	gates       []gate        // in flip order; at and needs both increase
	// ceiling bounds what Load returns once capped: a stream that drops
	// changes made under a replication origin may confirm only WAL that
	// the outbox's guard is proven to have covered (Session.Guarded).
	ceiling pglogrepl.LSN
	capped  bool
	// held, when set, hears (without blocking) each time the cap holds the
	// position back afresh, so that the guard is proven again promptly.
	held chan struct{}
}

// gate makes at confirmable once WAL is flushed to needs.
type gate struct{ at, needs pglogrepl.LSN }

// Load returns the position the term may confirm now.
func (p *position) Load() pglogrepl.LSN {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.capped {
		return min(p.confirmable, p.ceiling)
	}
	return p.confirmable
}

// Cap bounds the position by lsn from now on, or raises the bound to lsn.
// Both only move forward, and so does Load.
func (p *position) Cap(lsn pglogrepl.LSN) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.capped = true
	p.ceiling = max(p.ceiling, lsn)
}

// Held reports whether the cap holds back a position that would otherwise
// be confirmable.
func (p *position) Held() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.capped && p.confirmable > p.ceiling
}

// Resume sets where the term starts: the slot's confirmed position, or a new
// slot's consistent point. It never moves the position back.
func (p *position) Resume(lsn pglogrepl.LSN) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.advance(lsn)
}

// Wrote records a flip (or dead letter) whose commit ends at or before
// walEnd, an LSN read after the commit. Every flip counts, also one that
// makes no position confirmable by itself (a batch that ends inside a
// transaction): a later position depends on it all the same.
func (p *position) Wrote(walEnd pglogrepl.LSN) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.written = max(p.written, walEnd)
}

// Flipped records that every transaction up to at is flipped, by the flips
// reported to Wrote so far. at becomes confirmable once WAL is flushed past
// all of them.
func (p *position) Flipped(at pglogrepl.LSN) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.gates) == 0 && p.written <= p.flushed {
		p.advance(at)
		return
	}
	p.gates = append(p.gates, gate{at: at, needs: p.written})
	if n := len(p.gates); n > maxGates {
		p.gates[n-2] = p.gates[n-1]
		p.gates = p.gates[:n-1]
	}
}

// Flushed records that WAL is on disk up to lsn: any LSN a logical
// walsender sent (it decodes flushed WAL only, and with
// synchronized_standby_slots only WAL those standbys flushed too).
func (p *position) Flushed(lsn pglogrepl.LSN) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flushedTo(lsn)
}

// Idle offers a keepalive's position while nothing is in flight and no
// transaction is open: everything the publication holds below it is done,
// so it is confirmable as soon as no flip waits for its WAL.
func (p *position) Idle(lsn pglogrepl.LSN) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flushedTo(lsn)
	if len(p.gates) == 0 && p.written <= p.flushed {
		p.advance(lsn)
	}
}

// Waiting reports whether some flip's WAL is not known to be flushed yet,
// and how far WAL must be flushed for all of them.
func (p *position) Waiting() (needs pglogrepl.LSN, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.written, p.written > p.flushed
}

func (p *position) flushedTo(lsn pglogrepl.LSN) {
	p.flushed = max(p.flushed, lsn)
	n := 0
	for n < len(p.gates) && p.gates[n].needs <= p.flushed {
		p.advance(p.gates[n].at)
		n++
	}
	if n > 0 {
		p.gates = append(p.gates[:0], p.gates[n:]...)
	}
}

func (p *position) advance(lsn pglogrepl.LSN) {
	if lsn <= p.confirmable {
		return
	}
	p.confirmable = lsn
	if p.capped && lsn > p.ceiling && p.held != nil {
		select {
		case p.held <- struct{}{}:
		default:
		}
	}
}
