package secret

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func skipOnWindows(t *testing.T) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no Unix file modes")
	}
}

// requireOnlyKeyFile fails unless dir holds the key file and nothing else (no temporary files).
func requireOnlyKeyFile(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.Equal(t, []string{KeyFile}, names)
}

func TestLoadKeyFromEnv(t *testing.T) {
	t.Parallel()
	// 0xfb 0xff gives '+' and '/' in standard base64 and '-' and '_' in URL-safe base64.
	k1 := bytes.Repeat([]byte{0xfb, 0xff}, KeySize/2)
	k2 := newKey(t)
	want1, err := New(k1)
	require.NoError(t, err)
	want12, err := New(k1, k2)
	require.NoError(t, err)
	std := base64.StdEncoding.EncodeToString(k1)
	require.True(t, strings.ContainsAny(std, "+/="))

	tests := []struct {
		name string
		env  string
		want *Box
	}{
		{name: "standard", env: std, want: want1},
		{name: "standard unpadded", env: base64.RawStdEncoding.EncodeToString(k1), want: want1},
		{name: "url", env: base64.URLEncoding.EncodeToString(k1), want: want1},
		{name: "url unpadded", env: base64.RawURLEncoding.EncodeToString(k1), want: want1},
		{name: "surrounding spaces", env: " " + std + "\n", want: want1},
		{name: "rotation list", env: std + "," + base64.RawURLEncoding.EncodeToString(k2), want: want12},
		{name: "rotation list with spaces", env: std + " , " + base64.StdEncoding.EncodeToString(k2), want: want12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()

			box, created, err := LoadKey(tt.env, dir)
			require.NoError(t, err)
			require.False(t, created)
			require.Equal(t, tt.want.KeyIDs(), box.KeyIDs())

			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Empty(t, entries, "the key file is not used when the variable is set")

			sealed, err := box.Seal([]byte("token"), []byte(testAD))
			require.NoError(t, err)
			got, err := tt.want.Open(sealed, []byte(testAD))
			require.NoError(t, err)
			require.Equal(t, "token", string(got))
		})
	}
}

func TestLoadKeyFromEnvInvalid(t *testing.T) {
	t.Parallel()
	good := base64.StdEncoding.EncodeToString(newKey(t))
	b64 := base64.StdEncoding.EncodeToString
	tests := []struct {
		name    string
		env     string
		wantErr string
	}{
		{name: "not base64", env: "correct horse battery staple!", wantErr: "the key is not valid base64"},
		{name: "hex instead of base64", env: strings.Repeat("ab", KeySize),
			wantErr: "the key decodes to 48 bytes, want 32"},
		{name: "bad padding", env: good[:len(good)-2] + "=", wantErr: "the key is not valid base64"},
		{name: "too short", env: b64([]byte("sixteen byte key")), wantErr: "the key decodes to 16 bytes, want 32"},
		{name: "too long", env: b64(bytes.Repeat([]byte("k"), 33)), wantErr: "decodes to 33 bytes"},
		{name: "blank", env: "   ", wantErr: "the key is empty"},
		{name: "bad second key", env: good + ",c2hvcnQta2V5LXZhbHVl", wantErr: "key 2 of 2 decodes to 15 bytes"},
		{name: "empty in list", env: good + ",," + good, wantErr: "key 2 of 3 is empty"},
		{name: "trailing comma", env: good + ",", wantErr: "key 2 of 2 is empty"},
		{name: "duplicate", env: good + "," + good, wantErr: "key 2 has the same id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			box, created, err := LoadKey(tt.env, t.TempDir())
			require.Nil(t, box)
			require.False(t, created)
			require.ErrorContains(t, err, EnvVar)
			require.ErrorContains(t, err, tt.wantErr)
			for _, part := range strings.Split(tt.env, ",") {
				if part = strings.TrimSpace(part); len(part) >= 4 {
					require.NotContains(t, err.Error(), part, "the error repeats the variable's value")
				}
			}
		})
	}
}

func TestLoadKeyFileCreatedThenReused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	first, created, err := LoadKey("", dir)
	require.NoError(t, err)
	require.True(t, created)
	requireOnlyKeyFile(t, dir)
	info, err := os.Stat(filepath.Join(dir, KeyFile))
	require.NoError(t, err)
	require.EqualValues(t, KeySize, info.Size())
	if runtime.GOOS != "windows" {
		require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	}
	sealed, err := first.Seal([]byte("token"), []byte(testAD))
	require.NoError(t, err)

	second, created, err := LoadKey("", dir)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, first.KeyIDs(), second.KeyIDs())
	got, err := second.Open(sealed, []byte(testAD))
	require.NoError(t, err)
	require.Equal(t, "token", string(got))

	// The file's bytes are the key, so its base64 form works as the environment variable.
	raw, err := os.ReadFile(filepath.Join(dir, KeyFile))
	require.NoError(t, err)
	fromEnv, _, err := LoadKey(base64.StdEncoding.EncodeToString(raw), "")
	require.NoError(t, err)
	require.Equal(t, first.KeyIDs(), fromEnv.KeyIDs())
}

func TestLoadKeyFilePermissions(t *testing.T) {
	t.Parallel()
	skipOnWindows(t)
	tests := []struct {
		mode   os.FileMode
		wantOK bool
	}{
		{mode: 0o600, wantOK: true},
		{mode: 0o400, wantOK: true},
		{mode: 0o644},
		{mode: 0o640},
		{mode: 0o604},
		{mode: 0o660},
		{mode: 0o700},
		{mode: 0o666},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, KeyFile)
			key := newKey(t)
			require.NoError(t, os.WriteFile(path, key, 0o600))
			require.NoError(t, os.Chmod(path, tt.mode)) // not subject to the umask

			box, created, err := LoadKey("", dir)
			require.False(t, created)
			if tt.wantOK {
				require.NoError(t, err)
				want, err := New(key)
				require.NoError(t, err)
				require.Equal(t, want.KeyIDs(), box.KeyIDs())
				return
			}
			require.Error(t, err)
			require.Nil(t, box)
			require.ErrorContains(t, err, "chmod 600 "+path)
			require.ErrorContains(t, err, "broader than 0600")
			requireNoKey(t, err.Error(), key)
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, key, got, "a refused key file is left alone")
		})
	}
}

func TestLoadKeyFileWrongLength(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		contents []byte
		wantErr  string
	}{
		{name: "empty", contents: nil, wantErr: "holds 0 bytes, want 32"},
		{name: "short", contents: bytes.Repeat([]byte{1}, 16), wantErr: "holds 16 bytes, want 32"},
		{name: "one too many", contents: bytes.Repeat([]byte{1}, 33), wantErr: "holds 33 bytes, want 32"},
		{
			name:     "base64 text",
			contents: []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32)) + "\n"),
			wantErr:  "holds 45 bytes, want 32 raw bytes (not base64)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, KeyFile)
			require.NoError(t, os.WriteFile(path, tt.contents, 0o600))

			box, created, err := LoadKey("", dir)
			require.Nil(t, box)
			require.False(t, created)
			require.ErrorContains(t, err, tt.wantErr)
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, len(tt.contents), len(got), "a bad key file is never replaced")
		})
	}
}

func TestLoadKeyFileNotRegular(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, KeyFile), 0o700))

	_, _, err := LoadKey("", dir)
	require.ErrorContains(t, err, "not a regular file")
}

func TestLoadKeyNoDataDir(t *testing.T) {
	t.Parallel()
	_, _, err := LoadKey("", "")
	require.ErrorContains(t, err, EnvVar)

	missing := filepath.Join(t.TempDir(), "missing")
	_, created, err := LoadKey("", missing)
	require.ErrorIs(t, err, os.ErrNotExist)
	require.False(t, created)
	require.NoDirExists(t, missing, "LoadKey does not create the data directory")
}

func TestLoadKeyConcurrentFirstStart(t *testing.T) {
	t.Parallel()
	const rounds, loaders = 20, 8
	for range rounds {
		dir := t.TempDir()
		start := make(chan struct{})
		ids := make([][]string, loaders)
		createdBy := make([]bool, loaders)
		errs := make([]error, loaders)
		var wg sync.WaitGroup
		for i := range loaders {
			wg.Go(func() {
				<-start
				var box *Box
				box, createdBy[i], errs[i] = LoadKey("", dir)
				if box != nil {
					ids[i] = box.KeyIDs()
				}
			})
		}
		close(start)
		wg.Wait()

		creators := 0
		for i := range loaders {
			require.NoError(t, errs[i])
			require.Equal(t, ids[0], ids[i], "every loader uses the same key")
			if createdBy[i] {
				creators++
			}
		}
		require.Equal(t, 1, creators, "exactly one loader creates the key")
		requireOnlyKeyFile(t, dir)
	}
}
