package main

// The slow mode: the attack of issue 13, item 3 (one token opens connections that announce
// 32 MiB bodies and send a byte every 2 s, and reopens them when cut) while another token
// ingests at a steady rate.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	neturl "net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// slowBodies starts n attacking connections with a token of a user of their own (made with
// the admin token) and returns a function that stops them and reports what they did.
func (l *loader) slowBodies(ctx context.Context, n int) (stop func(), err error) {
	token, err := l.attackerToken()
	if err != nil {
		return nil, err
	}
	u, err := neturl.Parse(l.url)
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithCancel(ctx)
	var opened, cut, sent atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for actx.Err() == nil {
				c, err := (&net.Dialer{}).DialContext(actx, "tcp", u.Host)
				if err != nil {
					continue
				}
				opened.Add(1)
				if !trickle(actx, c, u.Host, token, &sent) {
					cut.Add(1)
				}
				c.Close()
			}
		}()
	}
	return func() {
		cancel()
		wg.Wait()
		fmt.Printf("attack: %d slow connections held at once, %d opened in all, %d cut by the server, %d bytes sent\n", n, opened.Load(), cut.Load(), sent.Load())
	}, nil
}

// trickle announces a 32 MiB body on c and sends a byte of it every 2 s until ctx ends (true)
// or the server cuts the connection (false).
func trickle(ctx context.Context, c net.Conn, host, token string, sent *atomic.Int64) bool {
	fmt.Fprintf(c, "POST /api/v4/audit_events HTTP/1.1\r\nHost: %s\r\nPRIVATE-TOKEN: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n[", host, token, 32<<20)
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return true
		case <-t.C:
			if _, err := c.Write([]byte(" ")); err != nil {
				return false
			}
			sent.Add(1)
		}
	}
}

// attackerToken makes a user and an ingest token for the attack with the admin token.
func (l *loader) attackerToken() (string, error) {
	name := fmt.Sprintf("loadgen-attacker-%d", os.Getpid())
	var user struct{ ID int64 }
	if err := l.postJSON("/api/v4/users", map[string]any{"username": name, "name": name, "email": name + "@example.com"}, &user); err != nil {
		return "", err
	}
	var tok struct{ Token string }
	if err := l.postJSON(fmt.Sprintf("/api/v4/users/%d/personal_access_tokens", user.ID), map[string]any{"name": "attack", "scopes": []string{"ingest"}}, &tok); err != nil {
		return "", err
	}
	return tok.Token, nil
}

func (l *loader) postJSON(path string, body, out any) error {
	b, _ := json.Marshal(body)
	return l.postBody(path, "application/json", b, out)
}
