package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// profileLeader fetches a CPU profile of cdcrelay's leader from its
// /debug/pprof endpoint (--pprof) for d, in the background, when -profile
// is set; the returned func waits for it. The poller profiles itself for its
// whole life (-cpuprofile), so nothing is done for it here.
func (s *session) profileLeader(ctx context.Context, label string, d time.Duration) (wait func()) {
	r, ok := s.sys.(*relaySystem)
	if !ok || s.env.o.profileDir == "" {
		return func() {}
	}
	// A replica just started may take a moment to lead.
	leader, err := r.leader(ctx, s)
	for deadline := time.Now().Add(10 * time.Second); err != nil && time.Now().Before(deadline); {
		if sleep(ctx, 10*time.Millisecond) != nil {
			break
		}
		leader, err = r.leader(ctx, s)
	}
	if err != nil {
		s.env.logf("  profile %s: %v", label, err)
		return func() {}
	}
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", r.addrs[leader], max(int(d.Seconds()), 1))
	path := filepath.Join(s.env.o.profileDir, fmt.Sprintf("%s-relay-%s.pprof", s.db, label))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := fetch(ctx, url, path); err != nil {
			s.env.logf("  profile %s: %v", label, err)
		}
	}()
	return wg.Wait
}

func fetch(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
