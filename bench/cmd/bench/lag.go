package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// lagSample is the writers' and JetStream's progress at one moment of a run.
type lagSample struct {
	at      time.Duration // since the run started
	written int64
	acked   int64
}

func (l lagSample) lag() int64 { return l.written - l.acked }

// lagSampler reads progress every interval until stopped.
type lagSampler struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	samples []lagSample
	err     error
}

func (s *session) sampleLag(ctx context.Context, start time.Time, base uint64, written func() int64) *lagSampler {
	ctx, cancel := context.WithCancel(ctx)
	ls := &lagSampler{cancel: cancel}
	ls.wg.Add(1)
	go func() {
		defer ls.wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			w := written()
			msgs, _, err := s.acked(ctx)
			if err != nil {
				if ctx.Err() == nil {
					ls.err = err
				}
				return
			}
			ls.samples = append(ls.samples, lagSample{at: time.Since(start), written: w, acked: int64(msgs - base)})
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return ls
}

// stop ends sampling and returns the samples.
func (ls *lagSampler) stop() ([]lagSample, error) {
	ls.cancel()
	ls.wg.Wait()
	return ls.samples, ls.err
}

// judgeLag decides whether lag stayed flat over a run of length window at
// rate events/s: between the second and the last quarter of the window the
// backlog may grow by at most 5 % of what was written meanwhile (the
// consumer kept at least 95 % of the pace), and, when maxLag is set, the
// backlog at the end must be under maxLag of writing. It returns the lag at
// the end in seconds.
func judgeLag(samples []lagSample, window time.Duration, rate float64, maxLag time.Duration) (flat bool, why string, lagEnd float64) {
	if len(samples) < 4 || rate <= 0 {
		return false, "too few samples", 0
	}
	var early, late []lagSample
	for _, s := range samples {
		switch {
		case s.at >= window/4 && s.at < window/2:
			early = append(early, s)
		case s.at >= 3*window/4 && s.at <= window:
			late = append(late, s)
		}
	}
	last := samples[len(samples)-1]
	for _, s := range samples {
		if s.at <= window {
			last = s
		}
	}
	lagEnd = float64(max(last.lag(), 0)) / rate
	if len(early) == 0 || len(late) == 0 {
		return false, "too few samples", lagEnd
	}
	lagE, atE := meanLag(early)
	lagL, atL := meanLag(late)
	growth := (lagL - lagE) / (atL - atE).Seconds()
	if growth > 0.05*rate {
		return false, fmt.Sprintf("lag grew by %.0f events/s", growth), lagEnd
	}
	if maxLag > 0 && lagEnd > maxLag.Seconds() {
		return false, fmt.Sprintf("lag %.2fs at the end", lagEnd), lagEnd
	}
	return true, "flat", lagEnd
}

func meanLag(ss []lagSample) (float64, time.Duration) {
	var lag float64
	var at time.Duration
	for _, s := range ss {
		lag += float64(s.lag())
		at += s.at
	}
	return lag / float64(len(ss)), at / time.Duration(len(ss))
}
