package election

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestConfigValidation(t *testing.T) {
	const url = "postgres://u@127.0.0.1:5432/db"
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no URL", Config{}, "no database URL"},
		{"bad URL", Config{URL: "postgres://u@127.0.0.1:notaport/db"}, "lock connection URL"},
		{"negative interval", Config{URL: url, Interval: -time.Second}, "interval"},
		{"negative back-off", Config{URL: url, MaxBackoff: -time.Second}, "back-off"},
		{"keepalive too short", Config{URL: url, KeepAlive: time.Second, Interval: 100 * time.Millisecond}, "at least 2s"},
		{"keepalive below 4 intervals", Config{URL: url, KeepAlive: 10 * time.Second, Interval: 3 * time.Second}, "4 × interval"},
		{"identity too long", Config{URL: url, Identity: strings.Repeat("x", 64)}, "longer than 63"},
		{"identity not ASCII", Config{URL: url, Identity: "relé"}, "printable ASCII"},
		{"identity with newline", Config{URL: url, Identity: "a\nb"}, "printable ASCII"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, zerolog.Nop())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	e, err := New(Config{URL: "postgres://u@127.0.0.1:5432/db"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	c := e.Config()
	if c.LockID != DefaultLockID || c.Interval != DefaultInterval || c.KeepAlive != DefaultKeepAlive || c.MaxBackoff != DefaultMaxBackoff {
		t.Fatalf("defaults not applied: %+v", c)
	}
	if !strings.HasPrefix(c.Identity, "cdcrelay ") || !strings.Contains(c.Identity, " pid ") || len(c.Identity) > maxIdentity {
		t.Fatalf("default identity %q", c.Identity)
	}
	if got := e.State(); got != StateUnhealthy {
		t.Fatalf("initial state %v, want unhealthy (not connected yet)", got)
	}
	want := timings{
		interval:            time.Second,
		maxBackoff:          DefaultMaxBackoff,
		verifyTimeout:       2500 * time.Millisecond,
		connectTimeout:      5 * time.Second,
		clientUserTimeout:   5 * time.Second,
		clientKeepAlive:     time.Second,
		serverKeepAliveSecs: 2,
		serverUserTimeoutMS: 10000,
	}
	if e.t != want {
		t.Fatalf("timings %+v, want %+v", e.t, want)
	}
	// The leader gives up well before the server frees its lock.
	if lead, srv := e.t.interval+e.t.verifyTimeout, c.KeepAlive-e.t.interval; lead >= srv {
		t.Fatalf("leader notices after %v, server may free the lock after %v", lead, srv)
	}

	// A long interval raises the keepalive bound rather than failing.
	e, err = New(Config{URL: "postgres://u@127.0.0.1:5432/db", Interval: 5 * time.Second}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Config().KeepAlive; got != 20*time.Second {
		t.Fatalf("keepalive %v, want 20s", got)
	}
	// The URL's connect_timeout wins.
	e, err = New(Config{URL: "postgres://u@127.0.0.1:5432/db?connect_timeout=3"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if e.t.connectTimeout != 3*time.Second {
		t.Fatalf("connect timeout %v, want 3s", e.t.connectTimeout)
	}
}

func TestDefaultLockIDSpellsCdcrelay(t *testing.T) {
	var b []byte
	for i := 56; i >= 0; i -= 8 {
		b = append(b, byte(DefaultLockID>>i))
	}
	if string(b) != "cdcrelay" {
		t.Fatalf("DefaultLockID bytes %q", b)
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{StateStandby: "standby", StateLeader: "leader", StateUnhealthy: "unhealthy", 7: "state(7)"} {
		if got := s.String(); got != want {
			t.Errorf("%d: %q, want %q", s, got, want)
		}
	}
}
