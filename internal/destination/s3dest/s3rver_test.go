package s3dest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/auditstream/auditstream/internal/destination"
	"github.com/auditstream/auditstream/internal/destination/objectstore"
	"github.com/auditstream/auditstream/internal/destination/s3dest"
)

// s3rver is a fake S3 server for Node.js that, unlike gofakes3, checks credentials. s3rver
// itself (https://github.com/jamhall/s3rver, 3.7.1 the last release) checks the access key id
// but not SigV4 signatures ("Signature version 4 calculation is unimplemented"), so a wrong
// secret would go unnoticed; its fork @20minutes/s3rver checks them. Its 4.x releases run on
// Node 20 (5.x needs Node 24) and ship no command, so the test starts it with a small script
// through its programmatic API.
const (
	s3rverPackage = "@20minutes/s3rver@4"
	s3rverModule  = "@20minutes/s3rver"
	s3rverKey     = "S3RVER" // its default access key id and secret
	s3rverSecret  = "S3RVER"
	s3rverBucket  = "audit-bucket"
	// s3rverStart bounds the wait for its port.
	s3rverStart = 60 * time.Second
)

// s3rverScript runs s3rver (CommonJS, whatever package.json is around): node s3rver.cjs <module dir> <data dir> <port> <bucket>.
const s3rverScript = `'use strict';
const [, , moduleDir, directory, port, bucket] = process.argv;
const S3rver = require(moduleDir);
new S3rver({ address: '127.0.0.1', port: Number(port), directory, silent: true, configureBuckets: [{ name: bucket }] })
  .run()
  .then((a) => console.log('s3rver listening on ' + a.address + ':' + a.port))
  .catch((err) => { console.error(err); process.exit(1); });
`

// TestS3rver sends through a Sender to s3rver, which checks access keys and signatures.
func TestS3rver(t *testing.T) {
	url := startS3rver(t)
	ctx := context.Background()
	at := time.Date(2026, 4, 30, 12, 0, 0, 42e6, time.UTC)
	e := event(77, "Project", "project_created", at)

	ok := newS3rverSender(t)(settingsFor(url, s3rverKey, s3rverBucket, s3rverSecret))
	require.NoError(t, ok.Send(ctx, []destination.Event{e}))
	batch := []destination.Event{event(78, "Group", "group_created", at), event(79, "User", "user_blocked", at)}
	okBatch := newS3rverSender(t)(settingsFor(url, s3rverKey, s3rverBucket, s3rverSecret, batchConfig))
	require.NoError(t, okBatch.Send(ctx, batch))

	reader := sdkClient(url, s3rverKey, s3rverSecret)
	objs := listObjects(t, reader, s3rverBucket)
	require.Len(t, objs, 2)
	require.Equal(t, objectstore.BatchKey("", batch), objs[0].Key)
	require.Equal(t, "application/x-ndjson", objs[0].ContentType)
	require.Equal(t, "gzip", objs[0].ContentEncoding)
	require.Equal(t, "project/2026/04/project_created_77_1777550400042.json", objs[1].Key)
	require.Equal(t, "application/json", objs[1].ContentType)
	require.Equal(t, string(e.JSON), string(objs[1].Body))

	const wrongSecret = "wrong-secret-0123456789abcdefghijklmnopqr"
	for _, tc := range []struct {
		name, key, secret, bucket string
		codes                     []string
		message                   string
	}{
		{"wrong secret", s3rverKey, wrongSecret, s3rverBucket, []string{"SignatureDoesNotMatch"}, "the secret access key does not match"},
		{"unknown key", "AKIAUNKNOWNKEY000000", wrongSecret, s3rverBucket, []string{"InvalidAccessKeyId"}, "the access key is not valid"},
		{"missing bucket", s3rverKey, s3rverSecret, "missing-bucket", []string{"NoSuchBucket"}, "bucket missing-bucket does not exist"},
	} {
		for _, extra := range [][]string{nil, {batchConfig}} {
			snd := newS3rverSender(t)(settingsFor(url, tc.key, tc.bucket, tc.secret, extra...))
			err := snd.Send(ctx, []destination.Event{event(80, "Group", "group_created", at)})
			f := failure(t, err)
			t.Logf("%s: %s", tc.name, f.Error())
			require.Equal(t, destination.Permanent, f.Kind, "%s: %s", tc.name, f.Error())
			require.Contains(t, f.Message, tc.message, tc.name)
			require.True(t, containsAny(f.Message, tc.codes), "%s: %s", tc.name, f.Message)
			require.NotContains(t, f.Error(), tc.secret)
			require.NotContains(t, f.Error(), wrongSecret)
		}
	}
	require.Len(t, listObjects(t, reader, s3rverBucket), 2)
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// settingsFor is settings with another access key id. s3rver's (S3RVER) is shorter than the
// API accepts (16 characters), so the test makes its sender from a typed config (newS3rverSender).
func settingsFor(endpoint, key, bucketName, secret string, extra ...string) (destination.Settings, s3dest.Config) {
	s := settings(endpoint, bucketName, secret, extra...)
	return s, s3dest.Config{AccessKeyXid: key, BucketName: bucketName, AWSRegion: region, Endpoint: endpoint, PathStyle: true, Batched: len(extra) > 0}
}

func newS3rverSender(t *testing.T) func(destination.Settings, s3dest.Config) destination.Sender {
	return func(s destination.Settings, cfg s3dest.Config) destination.Sender {
		return openTyped(t, s, cfg)
	}
}

func openTyped(t *testing.T, s destination.Settings, cfg s3dest.Config) destination.Sender {
	t.Helper()
	snd, err := s3dest.Type.New(cfg, s, destination.Env{HTTPClient: client})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, snd.Close()) })
	return snd
}

// startS3rver runs s3rver on a free loopback port with an empty directory and the bucket
// s3rverBucket, until the test ends, and returns its URL. Without node or npm it skips the test,
// unless CI is set: CI must run it.
func startS3rver(t *testing.T) string {
	t.Helper()
	node, errNode := exec.LookPath("node")
	npm, errNpm := exec.LookPath("npm")
	if err := errors.Join(errNode, errNpm); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("s3rver needs node and npm: %v", err)
		}
		t.Fatalf("s3rver needs node and npm, which CI must have: %v", err)
	}
	module := installS3rver(t, npm)
	script := filepath.Join(t.TempDir(), "s3rver.cjs")
	require.NoError(t, os.WriteFile(script, []byte(s3rverScript), 0o600))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, script, module, t.TempDir(), strconv.Itoa(port), s3rverBucket)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cancel() // kills the process
		<-exited
	})

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(s3rverStart)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = conn.Close()
			return "http://" + addr
		}
		select {
		case <-exited:
			t.Fatalf("s3rver exited before listening on %s: %s", addr, out.String())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatalf("s3rver did not listen on %s within %s: %s", addr, s3rverStart, out.String())
		}
	}
}

// installS3rver installs s3rverPackage with npm, once, under the user's cache directory, and
// returns the module's directory.
func installS3rver(t *testing.T, npm string) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	name := strings.NewReplacer("@", "", "/", "-").Replace(s3rverPackage) // 20minutes-s3rver4
	dir := filepath.Join(cache, "auditstream-test", "s3rver", name)
	module := filepath.Join(dir, "node_modules", filepath.FromSlash(s3rverModule))
	if _, err := os.Stat(filepath.Join(module, "package.json")); err == nil {
		logS3rverVersion(t, module)
		return module
	}
	require.NoError(t, os.MkdirAll(filepath.Dir(dir), 0o755))
	// Install beside it, then rename: a run that stops half-way leaves no broken install, and
	// of two concurrent runs the second rename fails harmlessly.
	tmp, err := os.MkdirTemp(filepath.Dir(dir), name+".install-")
	require.NoError(t, err)
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--no-save", "--loglevel=error", "--prefix", tmp, s3rverPackage)
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install %s: %v\n%s", s3rverPackage, err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(filepath.Join(module, "package.json")); statErr != nil {
			t.Fatalf("installing %s in %s: %v", s3rverPackage, dir, err)
		}
	}
	logS3rverVersion(t, module)
	return module
}

func logS3rverVersion(t *testing.T, module string) {
	b, err := os.ReadFile(filepath.Join(module, "package.json"))
	if err != nil {
		return
	}
	var pkg struct{ Name, Version string }
	_ = json.Unmarshal(b, &pkg)
	t.Logf("%s %s from %s", pkg.Name, pkg.Version, module)
}

// syncBuffer is a bytes.Buffer safe for the process's writes and the test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
