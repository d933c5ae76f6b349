package secret

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

const (
	// EnvVar is the environment variable that holds the keys, base64 encoded and comma separated,
	// the sealing key first.
	EnvVar = "AUDITSTREAM_SECRET_KEY"
	// KeyFile is the name of the key file in the data directory, used when EnvVar is empty. It
	// holds the 32 raw key bytes; `base64 -w0 secret.key` gives the EnvVar form.
	KeyFile = "secret.key"
)

// LoadKey returns the Box to seal and open secrets with. env is the value of
// AUDITSTREAM_SECRET_KEY and dataDir the data directory.
//
// When env is not empty it is a comma-separated list of keys, each the standard or URL-safe
// base64 encoding, padded or not, of exactly 32 bytes; the first key seals and the others only
// open, which is how keys are rotated. dataDir is then not used, so to move from a key file to
// the variable, put the file's key (`base64 -w0 secret.key`) in the list. Errors name the variable
// but never repeat its value.
//
// Otherwise the key is read from <dataDir>/secret.key. When that file does not exist LoadKey
// creates it with 32 random bytes and mode 0600 and reports created; the file appears complete
// or not at all, and when several processes start at once exactly one creates it and all use
// that key. An existing file is refused when its permissions are broader than 0600 or it does not
// hold exactly 32 bytes. dataDir must exist.
func LoadKey(env, dataDir string) (box *Box, created bool, err error) {
	if env != "" {
		box, err := boxFromEnv(env)
		return box, false, err
	}
	if dataDir == "" {
		return nil, false, fmt.Errorf("secret: %s is not set and there is no data directory for %s",
			EnvVar, KeyFile)
	}
	path := filepath.Join(dataDir, KeyFile)
	key, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createKeyFile(dataDir, path)
		created = err == nil
		if errors.Is(err, fs.ErrExist) { // another process created it first: use that key
			key, err = readKeyFile(path)
		}
	}
	if err != nil {
		return nil, false, err
	}
	defer clear(key)
	box, err = New(key)
	if err != nil {
		return nil, false, fmt.Errorf("secret: key file %s: %w", path, err)
	}
	return box, created, nil
}

// boxFromEnv parses the value of EnvVar. Its errors give the position of a bad key, never the key.
func boxFromEnv(env string) (*Box, error) {
	parts := strings.Split(env, ",")
	keys := make([][]byte, 0, len(parts))
	defer func() {
		for _, k := range keys {
			clear(k)
		}
	}()
	for i, part := range parts {
		which := fmt.Sprintf("key %d of %d", i+1, len(parts))
		if len(parts) == 1 {
			which = "the key"
		}
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, fmt.Errorf("secret: %s: %s is empty", EnvVar, which)
		}
		key, ok := decodeBase64(part)
		if !ok {
			return nil, fmt.Errorf("secret: %s: %s is not valid base64", EnvVar, which)
		}
		keys = append(keys, key)
		if len(key) != KeySize {
			return nil, fmt.Errorf("secret: %s: %s decodes to %d bytes, want %d "+
				"(generate one with `openssl rand -base64 32`)", EnvVar, which, len(key), KeySize)
		}
	}
	box, err := New(keys...)
	if err != nil {
		return nil, fmt.Errorf("secret: %s: %w", EnvVar, err)
	}
	return box, nil
}

// decodeBase64 accepts the standard and URL-safe alphabets, with or without padding.
func decodeBase64(s string) ([]byte, bool) {
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}

// readKeyFile reads the key from path, refusing a file others may read or one of the wrong size.
// A missing file gives an error that matches fs.ErrNotExist.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("secret: open key file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secret: key file %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("secret: key file %s is not a regular file", path)
	}
	// Windows has no Unix permission bits; os reports 0666 or 0444 for every file.
	if perm := info.Mode().Perm(); perm&^0o600 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("secret: key file %s has mode %04o, broader than 0600; fix it with `chmod 600 %s`",
			path, perm, path)
	}
	key, err := io.ReadAll(io.LimitReader(f, KeySize+1))
	if err != nil {
		return nil, fmt.Errorf("secret: read key file %s: %w", path, err)
	}
	if len(key) != KeySize {
		clear(key)
		return nil, fmt.Errorf("secret: key file %s holds %d bytes, want %d raw bytes (not base64)",
			path, info.Size(), KeySize)
	}
	return key, nil
}

// createKeyFile writes a new random key to a temporary file in dir and links it to path, so the
// key file appears complete or not at all. Unlike a rename, the link fails when path already
// exists, so of several processes starting at once only one key survives; the losers get an error
// matching fs.ErrExist and read the winner's file.
func createKeyFile(dir, path string) (key []byte, err error) {
	key = make([]byte, KeySize)
	rand.Read(key) // never fails; crashes the program if the OS has no randomness
	defer func() {
		if err != nil {
			clear(key)
			key = nil
		}
	}()

	tmp, err := os.CreateTemp(dir, "."+KeyFile+".*.tmp") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("secret: create key file in %s: %w", dir, err)
	}
	defer os.Remove(tmp.Name()) // after the link, path keeps the file
	_, err = tmp.Write(key)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("secret: write key file in %s: %w", dir, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("secret: create key file: %w", err)
	}
	syncDir(dir)
	return key, nil
}

// syncDir makes a new directory entry durable where the platform allows it. Failing is not an
// error: the key is already written, and some platforms cannot sync directories.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
