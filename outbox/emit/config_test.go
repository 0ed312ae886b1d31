package emit_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/outbox/emit"
)

func TestConfigMistakesFailAtConstruction(t *testing.T) {
	good := func() emit.Config {
		return emit.Config{
			URL:           "nats://127.0.0.1:4222",
			Stream:        "EVENTS",
			SubjectPrefix: "event.{chain_id}",
			PrefixValues:  map[string]string{"chain_id": "42"},
		}
	}
	if _, err := emit.New(good()); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*emit.Config)
		want   string
	}{
		{"placeholder without value", func(c *emit.Config) { c.PrefixValues = nil }, `has {chain_id} but PrefixValues has no "chain_id"`},
		{"value without placeholder", func(c *emit.Config) { c.PrefixValues["region"] = "eu" }, `PrefixValues has "region" but SubjectPrefix`},
		{"value with a dot", func(c *emit.Config) { c.PrefixValues["chain_id"] = "4.2" }, "one non-empty subject token"},
		{"empty value", func(c *emit.Config) { c.PrefixValues["chain_id"] = "" }, "one non-empty subject token"},
		{"unclosed placeholder", func(c *emit.Config) { c.SubjectPrefix = "event.{chain_id" }, "unmatched '{'"},
		{"stray brace", func(c *emit.Config) { c.SubjectPrefix = "event}.{chain_id}" }, "unmatched '}'"},
		{"wildcard prefix", func(c *emit.Config) { c.SubjectPrefix = "event.*.{chain_id}" }, "wildcard"},
		{"trailing dot", func(c *emit.Config) { c.SubjectPrefix = "event.{chain_id}." }, "dot"},
		{"no prefix", func(c *emit.Config) { c.SubjectPrefix, c.PrefixValues = "", nil }, "no SubjectPrefix"},
		{"no stream", func(c *emit.Config) { c.Stream = "" }, "no Stream"},
		{"dotted stream", func(c *emit.Config) { c.Stream = "a.b" }, "stream name"},
		{"no URL", func(c *emit.Config) { c.URL = " " }, "no URL"},
		{"negative queue", func(c *emit.Config) { c.QueueSize = -1 }, "QueueSize -1"},
		{"negative in-flight", func(c *emit.Config) { c.InFlight = -5 }, "InFlight -5"},
		{"retry bounds crossed", func(c *emit.Config) { c.RetryMin, c.RetryMax = time.Second, time.Millisecond }, "RetryMin <= RetryMax"},
		{"reconnect buffer", func(c *emit.Config) { c.ReconnectBufSize = -2 }, "ReconnectBufSize"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good()
			tc.change(&cfg)
			_, err := emit.New(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
