package main

import (
	"errors"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://app:s3cret@db:5432/shop?sslmode=require", "postgres://app:xxxxx@db:5432/shop?sslmode=require"},
		{"postgresql://app:p%40ss:w@db/shop", "postgresql://app:xxxxx@db/shop"},
		{"postgres://app@db:5432/shop", "postgres://app@db:5432/shop"},
		{"postgres://db:5432/shop and mail me at ops@example.com", "postgres://db:5432/shop and mail me at ops@example.com"},
		{"postgres://app:s3cret@h1:5432,h2:5432/shop", "postgres://app:xxxxx@h1:5432,h2:5432/shop"},
		{"postgres://app@db/shop?password=s3cret&sslmode=disable", "postgres://app@db/shop?password=xxxxx&sslmode=disable"},
		{"host=db user=app password=s3cret dbname=shop", "host=db user=app password=xxxxx dbname=shop"},
		{"host=db password='s3 cr\\'et' dbname=shop", "host=db password=xxxxx dbname=shop"},
		{"host=db sslpassword = s3cret", "host=db sslpassword = xxxxx"},
		{"nats://u:s3cret@n1:4222,nats://u:s3cret@n2:4222", "nats://u:xxxxx@n1:4222,nats://u:xxxxx@n2:4222"},
		{"nats://s3cret@n1:4222", "nats://xxxxx@n1:4222"},
		{"tls://n1:4222", "tls://n1:4222"},
		{`connect "postgres://a:s3cret@db/x": refused`, `connect "postgres://a:xxxxx@db/x": refused`},
	} {
		if got := redact(tc.in); got != tc.want {
			t.Errorf("redact(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestRedactError(t *testing.T) {
	base := errors.New("refused")
	err := redactError(errors.Join(errors.New("dial nats://u:s3cret@n1 with token t0ken"), base), "t0ken")
	if s := err.Error(); strings.Contains(s, "s3cret") || strings.Contains(s, "t0ken") {
		t.Errorf("error still holds a secret: %s", s)
	}
	if !errors.Is(err, base) {
		t.Error("redactError broke the chain")
	}
	if redactError(nil) != nil {
		t.Error("redactError(nil) != nil")
	}
	if e := errors.New("plain"); redactError(e) != e {
		t.Error("an error without secrets was rewrapped")
	}
}
