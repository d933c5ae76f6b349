package event

import (
	"errors"
	"strings"
	"time"
)

// ErrTimeParam is returned by ParseTimeParam for a value it does not read as a time.
var ErrTimeParam = errors.New("not an ISO 8601 time or date")

// ParseTimeParam reads a time given as an API parameter (created_after, created_before, a
// replay's start, …) the way GitLab's parameters of Grape type DateTime read it, and returns it
// in UTC. It accepts:
//
//   - a date alone, 2026-11-16 (midnight UTC);
//   - a date and a time of day separated by "T", "t" or a space: 2026-11-16T22:24,
//     2026-11-16T22:24:48, 2026-11-16 22:24:48.189000 (a fraction after "." or ",", any number
//     of digits; nanoseconds are kept);
//   - after the time, optionally (spaces allowed before it) a zone: "Z", "z", "UTC", "GMT",
//     or an offset "+01:00", "+0100", "+01" (and "-"). Without one the time is UTC, as in
//     GitLab (Python's naive isoformat() sends none).
//
// A "+" sent unencoded in a query string arrives as a space; an offset written " 01:00" or
// " 0100" after a time is therefore read as "+01:00" rather than silently ignored. Every field
// is range-checked: 2026-02-30 and 24:00 are refused, and so is a time outside years 1 to 9999
// in UTC.
func ParseTimeParam(s string) (time.Time, error) {
	p := timeParser{s: strings.TrimSpace(s)}
	t, ok := p.parse()
	if !ok {
		return time.Time{}, ErrTimeParam
	}
	if t = t.UTC(); t.Year() < 1 || t.Year() > 9999 { // an offset can push 0000 or 9999 out
		return time.Time{}, ErrTimeParam
	}
	return t, nil
}

// ParseDateParam reads a date parameter (GitLab's Grape Date, such as expires_at): a date, or
// any time ParseTimeParam reads, of which the date as written is taken (clients such as
// client-go send a full time). It returns midnight UTC of that date.
func ParseDateParam(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if _, err := ParseTimeParam(s); err != nil {
		return time.Time{}, err
	}
	return time.Parse(time.DateOnly, s[:len(time.DateOnly)])
}

type timeParser struct {
	s string
	i int
}

// digits reads exactly n ASCII digits.
func (p *timeParser) digits(n int) (int, bool) {
	if p.i+n > len(p.s) {
		return 0, false
	}
	v := 0
	for _, c := range []byte(p.s[p.i : p.i+n]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	p.i += n
	return v, true
}

func (p *timeParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *timeParser) eat(c byte) bool {
	if p.peek() == c {
		p.i++
		return true
	}
	return false
}

func (p *timeParser) parse() (time.Time, bool) {
	year, ok1 := p.digits(4)
	ok2 := p.eat('-')
	month, ok3 := p.digits(2)
	ok4 := p.eat('-')
	day, ok5 := p.digits(2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5) || month < 1 || month > 12 || day < 1 || day > daysIn(year, month) {
		return time.Time{}, false
	}
	if p.i == len(p.s) {
		return time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC), true
	}
	if c := p.peek(); c != 'T' && c != 't' && c != ' ' {
		return time.Time{}, false
	}
	p.i++
	hour, ok1 := p.digits(2)
	if !ok1 { // one digit, as Go's RFC 3339 reading and Ruby's DateTime take it (T2:24:48)
		hour, ok1 = p.digits(1)
	}
	ok2 = p.eat(':')
	minute, ok3 := p.digits(2)
	if !(ok1 && ok2 && ok3) || hour > 23 || minute > 59 {
		return time.Time{}, false
	}
	sec, nsec := 0, 0
	if p.eat(':') {
		var ok bool
		if sec, ok = p.digits(2); !ok || sec > 59 {
			return time.Time{}, false
		}
		if c := p.peek(); c == '.' || c == ',' {
			p.i++
			start := p.i
			for scale := 100_000_000; p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9'; p.i++ {
				nsec += int(p.s[p.i]-'0') * scale
				scale /= 10
			}
			if p.i == start {
				return time.Time{}, false
			}
		}
	}
	loc, ok := p.zone()
	if !ok || p.i != len(p.s) {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc), true
}

// zone reads what follows the time of day: nothing, or spaces and a zone.
func (p *timeParser) zone() (*time.Location, bool) {
	spaced := false
	for p.eat(' ') {
		spaced = true
	}
	rest := p.s[p.i:]
	switch {
	case rest == "":
		return time.UTC, true
	case rest == "Z" || rest == "z" || strings.EqualFold(rest, "UTC") || strings.EqualFold(rest, "GMT"):
		p.i = len(p.s)
		return time.UTC, true
	}
	sign := 1
	switch c := p.peek(); {
	case c == '+':
		p.i++
	case c == '-':
		sign = -1
		p.i++
	case spaced && c >= '0' && c <= '9':
		// an unencoded "+" that a query string turned into a space
	default:
		return nil, false
	}
	h, ok := p.digits(2)
	if !ok || h > 23 {
		return nil, false
	}
	m := 0
	if p.i < len(p.s) {
		p.eat(':')
		if m, ok = p.digits(2); !ok || m > 59 {
			return nil, false
		}
	}
	return time.FixedZone("", sign*(h*3600+m*60)), true
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
