package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cdcrelay/cdcrelay/bench/internal/report"
)

// foreignSubjects are what the foreign publisher writes into the bus's
// stream beside the outbox's events, as market data does on the bus
// cdcrelay serves (issue 11).
const foreignSubjects = "market.>"

// runShared drains the same backlog with and without a foreign publisher
// in the same stream, in one session: the share of the drain rate that
// sharing the stream keeps. The order alternates by round so drift of the
// machine (or of the outbox's bloat) does not favour one side.
func (s *session) runShared(ctx context.Context) (report.SharedRun, error) {
	o := s.env.o
	run := report.SharedRun{System: s.sys.name(), Events: o.sharedBacklog, ForeignRate: o.foreignRate}
	for round := 1; round <= o.rounds; round++ {
		rates := []float64{0, o.foreignRate}
		if round%2 == 0 {
			rates[0], rates[1] = rates[1], rates[0]
		}
		for _, rate := range rates {
			d, err := s.drainShared(ctx, rate)
			if err != nil {
				return run, err
			}
			d.Round = round
			run.Drains = append(run.Drains, d)
		}
	}
	run.Summarise()
	s.env.logf("  shared %-8s %d events: alone %.0f/s, with %.0f foreign msg/s %.0f/s (%.0f %%)",
		s.sys.name(), o.sharedBacklog, run.Alone, o.foreignRate, run.Shared, 100*run.Share)
	return run, nil
}

// drainShared writes a backlog while the system is down, starts the
// foreign publisher at rate (none at 0), then the system, and times the
// drain of the backlog's own subject.
func (s *session) drainShared(ctx context.Context, rate float64) (report.SharedDrain, error) {
	d := report.SharedDrain{ForeignRate: rate}
	if len(s.sys.replicas()) == 0 {
		// The first start creates cdcrelay's slot, so the backlog waits in WAL.
		if _, err := s.sys.start(ctx, s, true); err != nil {
			return d, err
		}
	}
	if err := s.sys.stop(); err != nil {
		return d, err
	}
	if err := s.fresh(ctx); err != nil {
		return d, err
	}
	subject, err := s.writeBacklog(ctx, s.env.o.sharedBacklog, 100)
	if err != nil {
		return d, err
	}
	info, err := s.stream.Info(ctx)
	if err != nil {
		return d, err
	}
	firstSeq := info.State.LastSeq + 1
	fctx, stopForeign := context.WithCancel(ctx)
	var (
		wg   sync.WaitGroup
		sent int64
		ferr error
	)
	if rate > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent, ferr = s.publishForeign(fctx, rate)
		}()
	}
	stop := func() error {
		stopForeign()
		wg.Wait()
		return ferr
	}
	t0 := time.Now()
	if _, err := s.sys.start(ctx, s, false); err != nil {
		return d, fmt.Errorf("%w (foreign publisher: %v)", err, stop())
	}
	last, err := s.waitSubject(ctx, subject, s.env.o.sharedBacklog, 5*time.Minute)
	drained := time.Now()
	if ferr := stop(); ferr != nil && err == nil {
		err = fmt.Errorf("foreign publisher: %w", ferr)
	}
	if err != nil {
		return d, err
	}
	first, err := s.stream.GetMsg(ctx, firstSeq, jetstream.WithGetMsgSubject(subject))
	if err != nil {
		return d, fmt.Errorf("read first drained message: %w", err)
	}
	d.Total = last.Sub(t0).Seconds()
	d.Drain = last.Sub(first.Time).Seconds()
	if d.Drain > 0 {
		d.Rate = float64(s.env.o.sharedBacklog) / d.Drain
	}
	if el := drained.Sub(t0).Seconds(); el > 0 {
		d.ForeignSent = float64(sent) / el
	}
	s.env.logf("  shared %-8s foreign %5.0f/s (sent %.0f/s): drain %.2fs, %.0f events/s",
		s.sys.name(), rate, d.ForeignSent, d.Drain, d.Rate)
	return d, nil
}

// publishForeign publishes fire-and-forget messages (core NATS, no ack
// awaited, each with its own Nats-Msg-Id as a market-data feed would) into
// the stream at rate per second until ctx ends, and returns how many it sent.
func (s *session) publishForeign(ctx context.Context, rate float64) (int64, error) {
	nc, err := nats.Connect(s.env.natsURL, nats.Name("bench foreign publisher"))
	if err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	const tick = 10 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	payload := make([]byte, s.env.o.payload)
	start := time.Now()
	var sent int64
	for {
		select {
		case <-ctx.Done():
			return sent, nc.Flush()
		case now := <-t.C:
			// Catch up to the schedule, so a slow tick does not lower the rate.
			due := int64(now.Sub(start).Seconds() * rate)
			for ; sent < due; sent++ {
				m := nats.NewMsg(fmt.Sprintf("market.klines.binance.spot.sym%d.1m", sent%16))
				m.Header.Set(jetstream.MsgIDHeader, "mkt-"+strconv.FormatInt(sent, 10))
				m.Data = payload
				if err := nc.PublishMsg(m); err != nil {
					return sent, fmt.Errorf("publish: %w", err)
				}
			}
		}
	}
}

// waitSubject waits until the stream holds n messages on subject and
// returns when the last of them was stored.
func (s *session) waitSubject(ctx context.Context, subject string, n int64, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		info, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil {
			return time.Time{}, fmt.Errorf("stream info: %w", err)
		}
		got := int64(info.State.Subjects[subject])
		if got >= n {
			m, err := s.stream.GetLastMsgForSubject(ctx, subject)
			if err != nil {
				return time.Time{}, fmt.Errorf("read last drained message: %w", err)
			}
			return m.Time, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s: %d of %d events in JetStream after %v", s.sys.name(), got, n, timeout)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return time.Time{}, err
		}
	}
}
