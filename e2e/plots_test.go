package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/poll"
)

// TestUIPlotsInABrowser: the stream page plots deliveries, failures and the backlog over the
// last hour and day, and the events page the volume by type, as inline SVG with an aria-label
// that says the figures; screenshots of each chart are written for people to look at (the
// directory is in the log).
func TestUIPlotsInABrowser(t *testing.T) {
	p := serve(t, t.TempDir(), "AUDITSTREAM_ALLOW_PRIVATE_DESTINATIONS=true")
	b := newBrowser(t, p.base)
	rc := newReceiver(t, "127.0.0.1:0")

	// Seven types, so that the volume chart stacks five by name and the other two together.
	var types []string
	for typ, n := range map[string]int{"user_created": 6, "member_created": 5, "project_created": 4, "user_blocked": 3,
		"group_created": 3, "group_archived": 2, "group_destroyed": 1} {
		for range n {
			types = append(types, typ)
		}
	}
	ingestGroupEvents(t, p.base, types...)
	poll.Until(t, 10*time.Second, func() error {
		if n := len(apiEventIDs(t, p.base, "/api/v4/groups/acme/audit_events")); n < len(types) {
			return fmt.Errorf("%d events stored, want %d", n, len(types))
		}
		return nil
	})

	b.signIn(adminToken)
	b.open("/groups/acme/-/streams/new?category=http")
	b.run(chromedp.SendKeys(chromedp.ID("name"), "siem"), chromedp.SendKeys(chromedp.ID("config_url"), rc.url()))
	b.navigate(chromedp.Click(chromedp.CSS(`form.card button[type="submit"]`)))
	streamURL := b.location()

	// Deliveries, then failures while the receiver is down, then deliveries again.
	flowing := ingestGroupEvents(t, p.base, "user_created", "member_created", "project_created")
	poll.Until(t, 10*time.Second, func() error {
		if got := rc.countOf(flowing); got != len(flowing) {
			return fmt.Errorf("%d of %d events delivered", got, len(flowing))
		}
		return nil
	})
	rc.down()
	ingestGroupEvents(t, p.base, "user_created", "user_blocked")
	b.waitStatus(streamURL, "failing", "circuit_open")
	rc.up()
	b.waitStatus(streamURL, "healthy")

	b.open(strings.TrimPrefix(streamURL, p.base) + "#deliveries")
	labels := eval[map[string]string](b, `Object.fromEntries(Array.from(document.querySelectorAll('figure.plot')).map(f =>
		[f.id, f.querySelector('svg[role=img]').getAttribute('aria-label')]))`)
	require.Len(t, labels, 6, "deliveries, pending events and their age, over the hour and the day: %v", labels)
	for _, id := range []string{"plot-deliveries-hour", "plot-deliveries-day"} {
		require.Regexp(t, `delivered: [1-9][0-9.k]* in total`, labels[id], id)
		require.Regexp(t, `failed: [1-9][0-9.k]* in total`, labels[id], id)
	}
	require.Contains(t, labels["plot-lag-hour"], "pending: peak")
	require.Contains(t, labels["plot-age-hour"], "UTC, per minute")
	require.Contains(t, labels["plot-age-day"], "UTC, per 15 minutes")
	hover := eval[string](b, `Array.from(document.querySelectorAll('#plot-deliveries-hour rect > title')).map(t => t.textContent).find(s => !s.includes('delivered 0, failed 0')) || ''`)
	require.Regexp(t, `^\d{4}-\d\d-\d\d \d\d:\d\d–\d\d:\d\d UTC: delivered \d+, failed \d+$`, hover, "a bucket's values on hover")
	b.shot("stream-plots")
	for _, id := range []string{"plot-deliveries-hour", "plot-lag-hour", "plot-age-hour", "plot-deliveries-day"} {
		b.element("#"+id, id)
	}

	// The events page: the volume of today's events by type, with the table's filters.
	today := time.Now().UTC().Format(time.DateOnly)
	b.open("/groups/acme/-/audit_events?created_after=" + today)
	label := eval[string](b, `document.querySelector('#plot-volume svg[role=img]').getAttribute('aria-label')`)
	require.Contains(t, label, "Events by type, ")
	require.Contains(t, label, "user_created: 8 in total")
	require.Contains(t, label, "other event types: 4 in total", "group_archived, group_destroyed and the audit event of the stream's creation together")
	b.shot("events-plot")
	b.element("#plot-volume", "events-volume")

	// Narrow screens: the charts shrink with the page, nothing of them sticks out.
	b.run(chromedp.EmulateViewport(375, 800))
	for _, path := range []string{strings.TrimPrefix(streamURL, p.base), "/groups/acme/-/audit_events", "/groups/acme/-/audit_events?created_after=" + today} {
		b.open(path)
		wide := eval[[]string](b, `Array.from(document.querySelectorAll('figure.plot, figure.plot *')).filter(e =>
			e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 10).map(e => e.tagName + ' ' + e.textContent.slice(0, 40) + ' ' + e.getBoundingClientRect().right)`)
		require.Empty(t, wide, "%s: chart parts wider than a 375 px screen", path)
	}
	b.element("#plot-volume", "narrow-events-volume")
	b.run(chromedp.EmulateViewport(1280, 900))

	// The same page filtered to one type shows that type only.
	b.open("/groups/acme/-/audit_events?created_after=" + today + "&event_type=member_created")
	label = eval[string](b, `document.querySelector('#plot-volume svg[role=img]').getAttribute('aria-label')`)
	require.Contains(t, label, "member_created: 6 in total")
	require.NotContains(t, label, "user_created")
	counts := regexp.MustCompile(`(\d+) in total`).FindAllStringSubmatch(label, -1)
	require.Len(t, counts, 1)
	n, _ := strconv.Atoi(counts[0][1])
	require.Equal(t, 6, n)
}

// element writes a screenshot of the first element sel matches.
func (b *browser) element(sel, name string) {
	b.t.Helper()
	png := get(b, chromedp.Screenshot(chromedp.CSS(sel)))
	b.n++
	require.NoError(b.t, os.WriteFile(filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.n, name)), png, 0o644))
}
