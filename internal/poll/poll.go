// Package poll waits in tests for what happens in other goroutines or processes: it checks a
// condition until it holds or a deadline passes, instead of sleeping for a guessed time.
package poll

import (
	"testing"
	"time"
)

// Until calls f until it returns nil, and fails the test with f's last error when timeout
// passes first. It checks again after 5 ms, then backs off to every 200 ms.
func Until(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 5 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", timeout, err)
		}
		time.Sleep(wait) // the interval between checks, not a wait for the condition
		wait = min(wait*2, 200*time.Millisecond)
	}
}
