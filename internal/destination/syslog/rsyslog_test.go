package syslog

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
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

	"github.com/auditstream/auditstream/internal/poll"
)

// rsyslog is Debian's rsyslogd, started for one test with an imtcp listener (octet-counting
// framing is on by default; with tls, the gtls driver of rsyslog-gnutls) and one main-queue
// worker that writes each message's fields to a file, in the order it read them.
type rsyslog struct {
	addr   string
	out    string
	caPEM  string
	cmd    *exec.Cmd
	once   sync.Once
	marks  int
	markMu sync.Mutex
}

// line is a message as rsyslog parsed it.
type line struct {
	MsgID, AppName, Hostname, Pri, Time, Msg string
}

// startRsyslog starts rsyslogd, or skips the test when it is not installed (scripts/test.sh
// installs it; CI must run these tests).
func startRsyslog(t *testing.T, withTLS bool) *rsyslog {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		for _, p := range []string{"/usr/sbin/rsyslogd", "/sbin/rsyslogd"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("rsyslogd is not installed (apt-get install rsyslog rsyslog-gnutls)")
		}
		t.Skip("rsyslogd is not installed (apt-get install rsyslog rsyslog-gnutls)")
	}
	dir := t.TempDir()
	r := &rsyslog{out: filepath.Join(dir, "out.log")}
	var conf strings.Builder
	fmt.Fprintf(&conf, "global(workDirectory=%q", dir)
	imtcp := `module(load="imtcp")`
	if withTLS {
		caPEM, certPEM, keyPEM := newCA(t)
		r.caPEM = caPEM
		for name, content := range map[string]string{"ca.pem": caPEM, "cert.pem": certPEM, "key.pem": keyPEM} {
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
		}
		fmt.Fprintf(&conf, " DefaultNetstreamDriverCAFile=%q DefaultNetstreamDriverCertFile=%q DefaultNetstreamDriverKeyFile=%q",
			filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
		imtcp = `module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")`
	}
	conf.WriteString(")\n")
	conf.WriteString(`main_queue(queue.workerThreads="1")` + "\n")
	conf.WriteString(imtcp + "\n")
	fmt.Fprintf(&conf, "input(type=\"imtcp\" port=\"0\" listenPortFileName=%q)\n", filepath.Join(dir, "port"))
	conf.WriteString(`template(name="fields" type="list") { property(name="msgid") constant(value="|") property(name="app-name") constant(value="|") ` +
		`property(name="hostname") constant(value="|") property(name="pri") constant(value="|") property(name="timereported" dateFormat="rfc3339") ` +
		`constant(value="|") property(name="msg") constant(value="\n") }` + "\n")
	fmt.Fprintf(&conf, "action(type=\"omfile\" file=%q template=\"fields\")\n", r.out)
	confPath := filepath.Join(dir, "rsyslog.conf")
	require.NoError(t, os.WriteFile(confPath, []byte(conf.String()), 0o600))

	r.cmd = exec.Command(bin, "-n", "-f", confPath, "-i", filepath.Join(dir, "rsyslogd.pid"))
	var stderr strings.Builder
	r.cmd.Stdout, r.cmd.Stderr = &stderr, &stderr
	require.NoError(t, r.cmd.Start())
	t.Cleanup(r.stop)
	poll.Until(t, 15*time.Second, func() error {
		b, err := os.ReadFile(filepath.Join(dir, "port"))
		if err != nil || len(strings.TrimSpace(string(b))) == 0 {
			return fmt.Errorf("rsyslogd has not written its port yet (%v): %s", err, stderr.String())
		}
		r.addr = net.JoinHostPort("127.0.0.1", strings.TrimSpace(string(b)))
		return nil
	})
	return r
}

func (r *rsyslog) stop() {
	r.once.Do(func() {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
	})
}

// lines returns the messages rsyslog has written, marks included.
func (r *rsyslog) lines(t *testing.T) []line {
	t.Helper()
	f, err := os.Open(r.out)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	defer f.Close()
	var out []line
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		p := strings.SplitN(sc.Text(), "|", 6)
		require.Len(t, p, 6, sc.Text())
		out = append(out, line{p[0], p[1], p[2], p[3], p[4], p[5]})
	}
	return out
}

// flush waits until rsyslog has written everything snd has sent: it writes a mark on each of
// snd's kept connections, behind what the connection carried, and waits for the marks (one
// session's messages are queued in order, and one worker writes them).
func (r *rsyslog) flush(t *testing.T, snd *sender) {
	t.Helper()
	snd.mu.Lock()
	conns := append([]net.Conn(nil), snd.idle...)
	snd.mu.Unlock()
	var marks []string
	for _, c := range conns {
		r.markMu.Lock()
		r.marks++
		mark := "mark-" + strconv.Itoa(r.marks)
		r.markMu.Unlock()
		msg := "<14>1 - - - - " + mark + " - " + mark
		_, err := fmt.Fprintf(c, "%d %s", len(msg), msg)
		require.NoError(t, err)
		marks = append(marks, mark)
	}
	poll.Until(t, 15*time.Second, func() error {
		seen := map[string]bool{}
		for _, l := range r.lines(t) {
			seen[l.MsgID] = true
		}
		for _, m := range marks {
			if !seen[m] {
				return fmt.Errorf("rsyslog has not written %s yet", m)
			}
		}
		return nil
	})
}

// events returns the messages that are not marks.
func (r *rsyslog) events(t *testing.T) []line {
	var out []line
	for _, l := range r.lines(t) {
		if !strings.HasPrefix(l.MsgID, "mark-") {
			out = append(out, l)
		}
	}
	return out
}

func ids(t *testing.T, ls []line) []int64 {
	var out []int64
	for _, l := range ls {
		var e struct{ ID int64 }
		require.NoError(t, json.Unmarshal([]byte(l.Msg), &e), l.Msg)
		out = append(out, e.ID)
	}
	return out
}

// newCA makes a CA and a certificate it signs for 127.0.0.1, in PEM.
func newCA(t *testing.T) (caPEM, certPEM, keyPEM string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})),
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}
