package app

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// freshConns are the HTTP connections that have not yet sent a whole request header. At
// Shutdown net/http waits up to 5 s for them (Go issue 22682), so a browser's preconnect or a
// client's spare connection would hold every exit that long.
type freshConns struct {
	mu sync.Mutex
	m  map[net.Conn]time.Time
}

// track is the server's ConnState hook.
func (f *freshConns) track(c net.Conn, s http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s != http.StateNew {
		delete(f.m, c)
		return
	}
	if f.m == nil {
		f.m = map[net.Conn]time.Time{}
	}
	f.m[c] = time.Now()
}

// closeWhile closes, until done, the connections that have sent nothing for at least grace:
// one whose first request is arriving has that long to send its header.
func (f *freshConns) closeWhile(done <-chan struct{}, grace time.Duration) {
	tick := time.NewTicker(grace / 5)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			f.mu.Lock()
			for c, at := range f.m {
				if now.Sub(at) >= grace {
					_ = c.Close()
					delete(f.m, c)
				}
			}
			f.mu.Unlock()
		}
	}
}
