package trail

import (
	"crypto/ed25519"
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

	"golang.org/x/mod/sumdb/note"
)

const (
	// KeyEnvVar holds the signing key in note's private key form
	// ("PRIVATE+KEY+<name>+<hash>+<key>"), as `auditstream trail-key` prints it.
	KeyEnvVar = "AUDITSTREAM_TRAIL_KEY"
	// KeyFile is the signing key's file in the data directory, used when KeyEnvVar is empty,
	// created on first start with mode 0600.
	KeyFile = "trail.key"
)

// Key is the checkpoint signing key and its public half.
type Key struct {
	// Signer signs checkpoints. Its private key never leaves this value.
	Signer note.Signer
	// VerifierKey is the public key in note's form ("<name>+<hash>+<key>"): what auditors are
	// given to check checkpoints with.
	VerifierKey string
}

// GenerateKey returns a new key pair named name (note's private and verifier key strings).
func GenerateKey(name string) (skey, vkey string, err error) {
	return note.GenerateKey(rand.Reader, name)
}

// ParseKey reads a private key in note's form. Its errors never repeat the key.
func ParseKey(skey string) (Key, error) {
	skey = strings.TrimSpace(skey)
	s, err := note.NewSigner(skey)
	if err != nil {
		return Key{}, errors.New("trail: the signing key is not a note private key (PRIVATE+KEY+<name>+<hash>+<key>)")
	}
	// note has no accessor for the public half: decode the seed (algorithm byte, then 32 bytes).
	// PRIVATE+KEY+<name>+<hash>+<key>: the key's base64 may itself hold '+'.
	parts := strings.SplitN(strings.TrimPrefix(skey, "PRIVATE+KEY+"), "+", 3)
	if len(parts) != 3 {
		return Key{}, errors.New("trail: the signing key is not a note private key (PRIVATE+KEY+<name>+<hash>+<key>)")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.SeedSize {
		return Key{}, errors.New("trail: the signing key is not an Ed25519 note key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	clear(raw)
	vkey, err := note.NewEd25519VerifierKey(s.Name(), pub)
	if err != nil {
		return Key{}, fmt.Errorf("trail: verifier key: %w", err)
	}
	return Key{Signer: s, VerifierKey: vkey}, nil
}

// LoadKey returns the signing key: env (the value of KeyEnvVar) when it is not empty, else the
// file KeyFile in dataDir, created with a new key named name and mode 0600 when missing
// (created reports it). A file readable by others is refused, as the secret key's is.
func LoadKey(env, dataDir, name string) (key Key, created bool, err error) {
	if strings.TrimSpace(env) != "" {
		k, err := ParseKey(env)
		if err != nil {
			return Key{}, false, fmt.Errorf("%s: %w", KeyEnvVar, err)
		}
		return k, false, nil
	}
	if dataDir == "" {
		return Key{}, false, fmt.Errorf("trail: %s is not set and there is no data directory for %s", KeyEnvVar, KeyFile)
	}
	path := filepath.Join(dataDir, KeyFile)
	skey, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if skey, _, err = GenerateKey(name); err != nil {
			return Key{}, false, fmt.Errorf("trail: generate key: %w", err)
		}
		err = createKeyFile(dataDir, path, skey)
		created = err == nil
		if errors.Is(err, fs.ErrExist) { // another process created it first: use that key
			skey, err = readKeyFile(path)
		}
	}
	if err != nil {
		return Key{}, false, err
	}
	k, err := ParseKey(skey)
	if err != nil {
		return Key{}, false, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, created, nil
}

func readKeyFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("trail: open key file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("trail: key file %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("trail: key file %s is not a regular file", path)
	}
	if perm := info.Mode().Perm(); perm&^0o600 != 0 && runtime.GOOS != "windows" {
		return "", fmt.Errorf("trail: key file %s has mode %04o, broader than 0600; fix it with `chmod 600 %s`", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", fmt.Errorf("trail: read key file %s: %w", path, err)
	}
	return string(b), nil
}

// createKeyFile writes skey to a temporary file and links it to path, so that the file appears
// complete or not at all, and of several processes starting at once one key wins (the link
// fails with fs.ErrExist for the others).
func createKeyFile(dir, path, skey string) error {
	tmp, err := os.CreateTemp(dir, "."+KeyFile+".*.tmp") // mode 0600
	if err != nil {
		return fmt.Errorf("trail: create key file in %s: %w", dir, err)
	}
	defer os.Remove(tmp.Name())
	_, err = io.WriteString(tmp, skey+"\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("trail: write key file in %s: %w", dir, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("trail: create key file: %w", err)
	}
	return nil
}
