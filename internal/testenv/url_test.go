package testenv

import "testing"

func TestReplaceDB(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "postgres://postgres@127.0.0.1:5432/t1?sslmode=disable"},
		{"postgres://u:p@127.0.0.1:1,127.0.0.1:2/postgres?sslmode=disable&target_session_attrs=read-write",
			"postgres://u:p@127.0.0.1:1,127.0.0.1:2/t1?sslmode=disable&target_session_attrs=read-write"},
		{"postgresql://h", "postgresql://h/t1"},
		{"host=h dbname=postgres", "host=h dbname=postgres dbname=t1"},
	} {
		if got := replaceDB(c.in, "t1"); got != c.want {
			t.Errorf("replaceDB(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
