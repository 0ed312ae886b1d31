package replication

import (
	"context"
	"fmt"
	"strings"
)

// SyncStandbyNames lists the standby names synchronous_standby_names
// makes candidates: `s1, s2`, `FIRST 1 (s1, s2)`, `2 (s1, s2)` and
// `ANY 1 (s1, s2)` all name s1 and s2. Names may be double-quoted; "*"
// stands for any standby.
func SyncStandbyNames(setting string) []string {
	toks := syncTokens(setting)
	if len(toks) >= 2 {
		i := 0
		if kw := strings.ToUpper(toks[0]); (kw == "FIRST" || kw == "ANY") && len(toks) >= 3 {
			i = 1
		}
		if isNumber(toks[i]) && toks[i+1] == "(" {
			toks = toks[i+2:]
		}
	}
	var names []string
	for _, t := range toks {
		if t != "," && t != "(" && t != ")" {
			names = append(names, strings.TrimPrefix(t, "\x00"))
		}
	}
	return names
}

// IsSyncStandby reports whether a walsender connected with applicationName
// is a candidate synchronous standby under setting. The server compares
// names without regard to case.
func IsSyncStandby(setting, applicationName string) bool {
	for _, n := range SyncStandbyNames(setting) {
		if n == "*" || strings.EqualFold(n, applicationName) {
			return true
		}
	}
	return false
}

// syncTokens splits the setting into names, numbers and the punctuation
// "(", ")" and ",". A quoted name is returned unquoted, marked with a
// leading NUL so that a quoted "*" or "FIRST" is never taken for syntax.
func syncTokens(s string) []string {
	var toks []string
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '(' || c == ')' || c == ',':
			toks = append(toks, string(c))
			i++
		case c == '"':
			var b strings.Builder
			i++
			for i < len(s) {
				if s[i] == '"' {
					if i+1 < len(s) && s[i+1] == '"' {
						b.WriteByte('"')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
			toks = append(toks, "\x00"+b.String())
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n\r\f\v(),\"", rune(s[j])) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks
}

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// syncReplication refuses a server on which the relay's own walsender could
// be a synchronous standby: every commit would then wait for the relay to
// confirm it, while the relay waits for the commit to become visible to flip
// its rows.
func (c *checker) syncReplication(ctx context.Context) error {
	var setting string
	if err := c.query(ctx, "synchronous replication", `SELECT current_setting('synchronous_standby_names')`, nil, &setting); err != nil {
		return err
	}
	app := c.cfg.ApplicationName
	if app == "" {
		app = applicationName
	}
	if !IsSyncStandby(setting, app) {
		return nil
	}
	return problem(fmt.Sprintf("list only the physical standbys in synchronous_standby_names, e.g. 'ANY 1 (standby1, standby2)', never '*' or %q", app),
		"synchronous_standby_names = '%s' makes the relay's own connection (application_name %s) a synchronous standby: commits would wait for the relay, which waits for them to commit", setting, app)
}
