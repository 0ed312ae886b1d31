package decode

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ParseHeaders parses the text form of the headers column, a JSON object of
// header name → string or array of strings, e.g. {"k":"v","k2":["a","b"]}.
// JSON null and {} give a nil map. It also checks what NATS would otherwise
// mangle or the relay reserves: names must be non-empty without whitespace,
// control characters or ':' and must not start with "Nats-"; values must not
// contain control characters other than tab (a CR or LF would end the NATS
// header line). The returned strings are owned: b may be reused.
func ParseHeaders(b []byte) (map[string][]string, error) {
	var p headerParser
	return p.parse(b, make([]byte, 0, len(b)))
}

// headerParser is a small JSON reader for exactly the headers shape, so the
// hot path needs neither reflection nor an intermediate map[string]any. A
// Decoder keeps one and reuses its scratch slices.
type headerParser struct {
	in  []byte
	pos int
	// arena receives the decoded strings, which then view it (ownedString).
	// A decoded JSON string is never longer than its source text, so an
	// arena with the capacity of the input never reallocates.
	arena []byte
	keys  []string
	ends  []int // ends[i] is the index in vals just past key i's values
	vals  []string
}

func (p *headerParser) parse(in, arena []byte) (map[string][]string, error) {
	p.in, p.pos, p.arena = in, 0, arena[:0]
	defer p.reset()
	if err := p.object(); err != nil {
		return nil, fmt.Errorf("headers: %w", err)
	}
	if len(p.keys) == 0 {
		return nil, nil
	}
	m := make(map[string][]string, len(p.keys))
	all := make([]string, len(p.vals))
	copy(all, p.vals)
	start := 0
	for i, k := range p.keys {
		end := p.ends[i]
		m[k] = all[start:end:end] // capacity-limited: appending cannot clobber the next key
		start = end
	}
	return m, nil
}

// reset drops the references into the last event's buffer so the scratch
// does not keep it alive.
func (p *headerParser) reset() {
	clear(p.keys)
	clear(p.vals)
	p.keys, p.ends, p.vals = p.keys[:0], p.ends[:0], p.vals[:0]
	p.in, p.arena = nil, nil
}

func (p *headerParser) object() error {
	p.space()
	if p.literal("null") {
		return p.eof()
	}
	if !p.next('{') {
		return fmt.Errorf("not a JSON object: %s", p.what())
	}
	p.space()
	if p.next('}') {
		return p.eof()
	}
	for {
		if !p.peek('"') {
			return fmt.Errorf("want a quoted header name at byte %d, got %s", p.pos, p.what())
		}
		k, err := p.str()
		if err != nil {
			return err
		}
		if err := checkName(k); err != nil {
			return err
		}
		p.space()
		if !p.next(':') {
			return fmt.Errorf("want ':' after %q, got %s", k, p.what())
		}
		p.space()
		switch {
		case p.peek('"'):
			if err := p.value(k); err != nil {
				return err
			}
		case p.next('['):
			if err := p.array(k); err != nil {
				return err
			}
		default:
			return fmt.Errorf("value of %q is %s, want a string or an array of strings", k, p.what())
		}
		p.keys = append(p.keys, k)
		p.ends = append(p.ends, len(p.vals))
		p.space()
		if p.next('}') {
			return p.eof()
		}
		if !p.next(',') {
			return fmt.Errorf("want ',' or '}' after the value of %q, got %s", k, p.what())
		}
		p.space()
	}
}

func (p *headerParser) array(k string) error {
	p.space()
	if p.next(']') {
		return nil
	}
	for {
		if !p.peek('"') {
			return fmt.Errorf("array of %q holds %s, want strings only", k, p.what())
		}
		if err := p.value(k); err != nil {
			return err
		}
		p.space()
		if p.next(']') {
			return nil
		}
		if !p.next(',') {
			return fmt.Errorf("want ',' or ']' in the array of %q, got %s", k, p.what())
		}
		p.space()
	}
}

func (p *headerParser) value(k string) error {
	v, err := p.str()
	if err != nil {
		return err
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return fmt.Errorf("value of %q contains control character %q", k, c)
		}
	}
	p.vals = append(p.vals, v)
	return nil
}

func checkName(k string) error {
	if k == "" {
		return errors.New("empty header name")
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c <= ' ' || c == 0x7f || c == ':' {
			return fmt.Errorf("header name %q contains %q", k, c)
		}
	}
	if len(k) >= 5 && strings.EqualFold(k[:5], "Nats-") {
		return fmt.Errorf("header name %q: the Nats- prefix is reserved for the relay", k)
	}
	return nil
}

var errUnterminated = errors.New("unterminated string")

// str decodes the JSON string whose opening quote is at p.pos into the arena.
func (p *headerParser) str() (string, error) {
	p.pos++
	start := len(p.arena)
	for p.pos < len(p.in) {
		switch c := p.in[p.pos]; {
		case c == '"':
			p.pos++
			return ownedString(p.arena[start:]), nil
		case c == '\\':
			if err := p.escape(); err != nil {
				return "", err
			}
		case c < ' ':
			return "", fmt.Errorf("raw control character %q in a string at byte %d", c, p.pos)
		default:
			run := p.pos
			for p.pos < len(p.in) {
				if c := p.in[p.pos]; c == '"' || c == '\\' || c < ' ' {
					break
				}
				p.pos++
			}
			p.arena = append(p.arena, p.in[run:p.pos]...)
		}
	}
	return "", errUnterminated
}

// escape decodes the backslash escape at p.pos.
func (p *headerParser) escape() error {
	at := p.pos
	if p.pos+1 >= len(p.in) {
		return errUnterminated
	}
	c := p.in[p.pos+1]
	p.pos += 2
	switch c {
	case '"', '\\', '/':
		p.arena = append(p.arena, c)
	case 'b':
		p.arena = append(p.arena, '\b')
	case 'f':
		p.arena = append(p.arena, '\f')
	case 'n':
		p.arena = append(p.arena, '\n')
	case 'r':
		p.arena = append(p.arena, '\r')
	case 't':
		p.arena = append(p.arena, '\t')
	case 'u':
		r, ok := p.hex4()
		if !ok {
			return fmt.Errorf("bad \\u escape at byte %d", at)
		}
		if utf16IsHigh(r) {
			// A surrogate pair is two escapes; anything else leaves a lone
			// surrogate, which becomes U+FFFD as in encoding/json.
			if p.pos+1 < len(p.in) && p.in[p.pos] == '\\' && p.in[p.pos+1] == 'u' {
				save := p.pos
				p.pos += 2
				if lo, ok := p.hex4(); ok && utf16IsLow(lo) {
					r = 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00)
				} else {
					p.pos = save
					r = utf8.RuneError
				}
			} else {
				r = utf8.RuneError
			}
		} else if utf16IsLow(r) {
			r = utf8.RuneError
		}
		p.arena = utf8.AppendRune(p.arena, r)
	default:
		return fmt.Errorf("bad escape %q at byte %d", c, at)
	}
	return nil
}

func utf16IsHigh(r rune) bool { return r >= 0xd800 && r < 0xdc00 }
func utf16IsLow(r rune) bool  { return r >= 0xdc00 && r < 0xe000 }

func (p *headerParser) hex4() (rune, bool) {
	if len(p.in)-p.pos < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p.in[p.pos : p.pos+4] {
		h := unhex(c)
		if h > 15 {
			return 0, false
		}
		r = r<<4 | rune(h)
	}
	p.pos += 4
	return r, true
}

func (p *headerParser) space() {
	for p.pos < len(p.in) {
		switch p.in[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *headerParser) peek(c byte) bool { return p.pos < len(p.in) && p.in[p.pos] == c }

func (p *headerParser) next(c byte) bool {
	if p.peek(c) {
		p.pos++
		return true
	}
	return false
}

func (p *headerParser) literal(s string) bool {
	if len(p.in)-p.pos >= len(s) && string(p.in[p.pos:p.pos+len(s)]) == s {
		p.pos += len(s)
		return true
	}
	return false
}

func (p *headerParser) eof() error {
	p.space()
	if p.pos != len(p.in) {
		return fmt.Errorf("trailing data after the object (%s)", p.what())
	}
	return nil
}

// what names the JSON found at p.pos, for errors.
func (p *headerParser) what() string {
	if p.pos >= len(p.in) {
		return "end of input"
	}
	switch c := p.in[p.pos]; {
	case c == '"':
		return "a string"
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '-' || (c >= '0' && c <= '9'):
		return "a number"
	default:
		return fmt.Sprintf("%q at byte %d", c, p.pos)
	}
}
