package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdcrelay/cdcrelay/bench/internal/load"
	"github.com/cdcrelay/cdcrelay/decode"
	"github.com/cdcrelay/cdcrelay/relay"
	"github.com/cdcrelay/cdcrelay/replication"
)

// tap is a bare replication client on a second slot of cdcrelay's
// publication. The relay does not expose when its walsender sent an event
// nor when it received it, so the tap reads both off the wire for the same
// transactions: the Commit message's commit timestamp and the XLogData send
// time of the walsender, and its own receipt. Its walsender is not the
// relay's: it decodes the same WAL at the same time, so it stands in for it
// (and adds its own decoding to the machine's load, which is why the stage
// runs are separate from the latency runs).
type tap struct {
	tag    uint32
	conn   *replication.Conn
	commit []int64 // Unix ns: the Commit message's timestamp
	sent   []int64 // Unix ns: the Commit frame's XLogData send time
	recv   []int64 // Unix ns: when the tap received the Commit frame
	wg     sync.WaitGroup
	err    error
	cancel context.CancelFunc
}

func (s *session) startTap(ctx context.Context, tag uint32, n int64) (_ *tap, err error) {
	c, err := replication.Connect(ctx, s.url+"&application_name=bench_tap")
	if err != nil {
		return nil, fmt.Errorf("tap: %w", err)
	}
	defer func() {
		if err != nil {
			_ = c.Close(context.WithoutCancel(ctx))
		}
	}()
	// One slot per run: each stage run taps the session's database anew.
	slot := fmt.Sprintf("tap_%s_%d", s.db, tag)
	if _, err := c.CreateSlot(ctx, slot); err != nil {
		return nil, fmt.Errorf("tap: %w", err)
	}
	if err := c.Start(ctx, slot, 0, replication.StartOptions{Publication: relay.DefaultPublication, Binary: c.ServerVersion() >= 140000}); err != nil {
		return nil, fmt.Errorf("tap: %w", err)
	}
	t := &tap{tag: tag, conn: c, commit: make([]int64, n), sent: make([]int64, n), recv: make([]int64, n)}
	tctx, cancel := context.WithCancel(ctx)
	t.cancel = cancel
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.err = t.read(tctx)
	}()
	return t, nil
}

// read records the times of every transaction with events of the run until
// ctx ends.
func (t *tap) read(ctx context.Context) error {
	dec := decode.New(decode.Table{})
	var (
		open      []int64 // seqs of the transaction being received
		confirmed pglogrepl.LSN
		lastSent  time.Time
	)
	for ctx.Err() == nil {
		f, err := t.conn.Receive(time.Now().Add(200 * time.Millisecond))
		if errors.Is(err, replication.ErrTimeout) {
			continue
		}
		if err != nil {
			return err
		}
		now := time.Now()
		if f.Kind == replication.FrameKeepalive {
			if f.ReplyRequested {
				if err := t.conn.SendStatus(ctx, confirmed); err != nil {
					return err
				}
			}
			continue
		}
		m, err := dec.Decode(f.Data)
		if err != nil {
			return err
		}
		switch m.Kind {
		case decode.KindInsert:
			if m.Event == nil {
				continue
			}
			if tag, seq, _, ok := load.Decode(m.Event.Payload); m.Event != nil && ok && tag == t.tag && seq >= 0 && seq < int64(len(t.commit)) {
				open = append(open, seq)
			}
		case decode.KindCommit:
			for _, seq := range open {
				t.commit[seq], t.sent[seq], t.recv[seq] = m.CommitTime.UnixNano(), f.ServerTime.UnixNano(), now.UnixNano()
			}
			open = open[:0]
			confirmed = m.EndLSN
			// Confirm now and then, so the slot does not hold WAL the
			// relay's has released.
			if now.Sub(lastSent) > time.Second {
				if err := t.conn.SendStatus(ctx, confirmed); err != nil {
					return err
				}
				lastSent = now
			}
		}
	}
	return nil
}

// stop ends the tap and returns why it ended early, if it did. The slot is
// dropped with the session's database.
func (t *tap) stop(ctx context.Context) error {
	t.cancel()
	t.wg.Wait()
	if err := t.conn.Close(context.WithoutCancel(ctx)); err != nil && t.err == nil {
		return err
	}
	return t.err
}
