package publish

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// JetStream fast-ingest batch publishing (ADR-50, nats-server ≥ 2.14,
// stream option allow_batched), as nats-server's stream.go and
// jetstream_batching.go implement it. Every message of a batch carries its
// place in the reply subject:
//
//	<inbox>.<batch id>.<flow>.<gap mode>.<batch seq>.<op>.$FI
//
// With gap mode "fail" the stream leader stores a batch's messages in batch
// order and ends the batch at the first one it cannot store (a refusal, or a
// sequence that skips one that got lost): nothing after it is stored, and
// the PubAck that ends the batch counts the messages 1..count that are in
// the stream. A duplicate Nats-Msg-Id is skipped and the batch goes on. The
// server acks progress every <flow> messages ({"type":"ack","seq":n}: 1..n
// are stored), reports refusals ({"type":"err"}) and gaps ({"type":"gap"}),
// and answers the commit (the last message sent with op commit, or an empty
// end-of-batch message) with the PubAck. Stored messages carry only their own
// headers: the batch control travels in the reply subject.
const (
	opStart  = "0"
	opAppend = "1"
	opCommit = "2"
	opEOB    = "3" // end of batch: commits what came before; not stored
	// requestedFlow asks for an ack every 100 messages (the server grants
	// up to 500, and starts lower when other batches share the stream). A
	// batch stays open while events keep coming (commitLinger), so flow
	// acks are what resolves events under a steady load: every 100 keeps
	// that within 100 ms at 1 k events/s, at one small ack per 100
	// messages.
	requestedFlow = 100
	// maxUnacked, in acks, bounds how far the relay runs ahead of the
	// server's flow acks: 4000 messages, as when acks came every 500.
	maxUnacked = 40
	// commitLinger is how long a batch stays open after its last message
	// before the sender commits it. Committing whenever the sender caught
	// up with the window made every small transaction a batch of its own,
	// and the next batch waited for the previous one's PubAck: when the
	// machine was busy, the reader handed over events one at a time and
	// each cost a round trip to the server (bench, 10 k events/s: episodes
	// of 100-150 ms with events stored about 1 ms apart). An open batch
	// takes the next events at once; the server stores each message as it
	// arrives, so the linger delays only the acks (and so the flips and the
	// slot's confirmed position), never delivery.
	//
	// It outlasts the gaps of a trickle: at 100 events/s a 5 ms linger
	// committed every event alone, and the commit, its PubAck, the next
	// batch's first ack, the flip and their timers cost ~800 µs of relay
	// CPU per event. ackLinger bounds how long the oldest unacked message
	// waits for its ack while events keep coming too slowly for flow acks.
	commitLinger = 50 * time.Millisecond
	ackLinger    = 200 * time.Millisecond
	// codeUnknownBatch is JSBatchPublishUnknownBatchIDErr: the server has no
	// state for the batch (it restarted, the batch timed out, or it ended).
	codeUnknownBatch = 10208
)

// batch is the one batch the pipeline has open. Pipeline.mu guards it.
type batch struct {
	open   bool
	id     string
	prefix string // reply subjects: prefix + seq + "." + op + ".$FI"
	n      uint32 // messages published
	acked  uint32 // messages 1..acked are stored (flow acks)
	flow   uint16 // the server acks every flow messages
	// committed: the commit is out, nothing more may be added.
	committed bool
	// first is the subject of the batch's first message, where an
	// end-of-batch goes: a subject the stream takes and the relay may
	// publish to, or the batch would not have started.
	first string
	// lastSent is when the batch's last message went out.
	lastSent time.Time
	// heard is the last word from the server about this batch (or its
	// first publish); a batch that waits for an ack longer than the ack
	// timeout is sealed.
	heard time.Time
	// broken is why the batch must be sealed at once (a lost message, a
	// failed publish, a permission violation); sealedAt is when the last
	// end-of-batch went out to seal it.
	broken   error
	sealedAt time.Time
	// recheck: a message found no stream (503), so the stream's subjects
	// are read again before the next batch.
	recheck bool

	// Set by the server's answers.
	ended      bool
	count      int64 // when ended: 1..count are stored; -1 when unknown (only 1..acked are sure)
	duplicate  bool  // a batch of one whose message was already stored
	refused    uint32
	refusedErr error
	cause      error // why the batch ended before its last message
}

// expecting reports whether the server owes the batch an answer.
func (b *batch) expecting() bool { return b.open && (b.committed || b.n > b.acked) }

// needsSeal reports whether an end-of-batch must go out now: the batch broke,
// or waited longer than timeout for an answer; an end-of-batch that got no
// answer is sent again after timeout.
func (b *batch) needsSeal(now time.Time, timeout time.Duration) bool {
	if !b.open || b.ended {
		return false
	}
	if !b.sealedAt.IsZero() {
		return now.Sub(b.sealedAt) >= timeout
	}
	return b.broken != nil || (b.expecting() && now.Sub(b.heard) >= timeout)
}

// linger is how much longer an open batch the sender has caught up with
// waits for more messages before its commit goes out: until commitLinger
// after its last message, and while messages await an ack, until ackLinger
// after the last word from the server (see commitLinger), or a quarter of
// the ack timeout if that is shorter, so that a short --ack-timeout never
// seals a batch that was only lingering. Zero or less: commit now.
func (b *batch) linger(now time.Time, ackTimeout time.Duration) time.Duration {
	wait := commitLinger - now.Sub(b.lastSent)
	if b.n > b.acked {
		wait = min(wait, min(ackLinger, ackTimeout/4)-now.Sub(b.heard))
	}
	return wait
}

// reply is the reply subject of the batch's message seq.
func (b *batch) reply(seq uint32, op string) string {
	return b.prefix + strconv.FormatUint(uint64(seq), 10) + "." + op + ".$FI"
}

// newBatch opens a batch under an id no other publisher uses: the server
// knows a stream's fast batches by their id alone, and an earlier term's
// batch, a standby's or another relay's may still be open on the stream.
func newBatch(inbox string) batch {
	token := nuid.Next()
	return batch{
		open:   true,
		id:     token,
		prefix: inbox + "." + token + "." + strconv.Itoa(requestedFlow) + ".fail.",
		flow:   requestedFlow,
	}
}

// control is any answer of the server on a batch's reply subjects.
type control struct {
	Type    string              `json:"type"` // "ack", "gap", "err"; empty for a PubAck
	Seq     uint64              `json:"seq"`  // batch sequence (ack, err); stream sequence (PubAck)
	Msgs    uint16              `json:"msgs"`
	LastSeq uint64              `json:"last_seq"`
	Error   *jetstream.APIError `json:"error"`
	// PubAck
	Count     *uint64 `json:"count"`
	Duplicate bool    `json:"duplicate"`
	Batch     string  `json:"batch"`
}

// replyParts returns the batch id and sequence of a reply subject under
// inbox.
func replyParts(subject, inbox string) (id string, seq uint32, ok bool) {
	rest, ok := strings.CutPrefix(subject, inbox+".")
	if !ok {
		return "", 0, false
	}
	id, rest, _ = strings.Cut(rest, ".")
	parts := strings.Split(rest, ".") // flow, gap mode, seq, op, $FI
	if len(parts) != 5 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(parts[2], 10, 32)
	if err != nil {
		return "", 0, false
	}
	return id, uint32(n), true
}

// hear applies one answer of the server to the open batch. It reports
// whether the batch's state moved (the sender must look again).
func (b *batch) hear(m *nats.Msg, inbox string, now time.Time) bool {
	id, seq, ok := replyParts(m.Subject, inbox)
	if !ok || !b.open || b.ended || id != b.id {
		return false // an answer to a batch already dealt with
	}
	b.heard = now
	if len(m.Data) == 0 {
		// A status without a body: 503 means nothing took the message,
		// no stream leader or no stream for its subject.
		status := m.Header.Get("Status")
		if status == "" {
			return false
		}
		err := fmt.Errorf("message %d of a batch found no JetStream stream leader or no stream for its subject (status %s)", seq, status)
		b.recheck = true
		if seq == 1 {
			// The batch never started: nothing of it can be stored.
			b.ended, b.count, b.cause = true, 0, err
		} else if b.broken == nil {
			b.broken = err
		}
		return true
	}
	var c control
	if err := json.Unmarshal(m.Data, &c); err != nil {
		b.broken = fmt.Errorf("unreadable JetStream batch answer %q: %w", m.Data, err)
		return true
	}
	if c.Type == "" && c.Batch != "" && c.Batch != b.id {
		// Never resolve events on another batch's PubAck.
		b.broken = fmt.Errorf("JetStream answered message %d with the PubAck of batch %q", seq, c.Batch)
		return true
	}
	switch c.Type {
	case "ack":
		if s := uint32(min(c.Seq, uint64(b.n))); s > b.acked {
			b.acked = s
		}
		if c.Msgs > 0 {
			b.flow = c.Msgs
		}
	case "gap":
		if b.cause == nil {
			b.cause = fmt.Errorf("message %d of a batch was lost on its way to the stream", c.LastSeq)
		}
	case "err":
		if c.Error != nil {
			b.refused, b.refusedErr = uint32(c.Seq), c.Error
		}
	default:
		b.end(c, seq)
	}
	return true
}

// end applies a PubAck, sent to the reply of message seq: it ends the
// batch, or refuses one message of it.
func (b *batch) end(c control, seq uint32) {
	switch {
	case c.Error == nil && c.Count != nil:
		b.ended, b.count, b.duplicate = true, int64(*c.Count), c.Duplicate
	case c.Error == nil:
		b.ended, b.count, b.cause = true, -1, errors.New("JetStream ended a batch without a count")
	case c.Error.ErrorCode == codeUnknownBatch:
		// Restarted, timed out, or ended already: only acked messages are sure.
		b.ended, b.count, b.cause = true, -1, c.Error
	case seq == 1:
		// The first message was refused: the batch never started.
		b.ended, b.count, b.refused, b.refusedErr = true, 0, 1, c.Error
	default:
		// Message seq was refused before it joined the batch, which
		// goes on without it: a gap the server ends the batch at once it
		// sees the next message. Seal it now, in case seq was the last.
		if b.refused == 0 {
			b.refused, b.refusedErr = seq, c.Error
		}
		if b.broken == nil {
			b.broken = fmt.Errorf("JetStream refused message %d of a batch: %w", seq, c.Error)
		}
	}
}
