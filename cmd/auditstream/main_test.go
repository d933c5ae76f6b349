package main

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDurationFlagTakesDays(t *testing.T) {
	var d time.Duration
	v := durationValue{&d}
	for in, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "0.5d": 12 * time.Hour, "36h": 36 * time.Hour, "90s": 90 * time.Second} {
		require.NoError(t, v.Set(in), in)
		require.Equal(t, want, d, in)
	}
	for _, bad := range []string{"d", "7 days", "x"} {
		require.ErrorContains(t, v.Set(bad), "is not a duration", bad)
	}
}

// Every flag can come from AUDITSTREAM_<FLAG>; a flag on the command line wins.
func TestEnvironmentSetsFlags(t *testing.T) {
	t.Setenv("AUDITSTREAM_LOG_MAX_AGE", "3d")
	t.Setenv("AUDITSTREAM_LISTEN", "127.0.0.1:9999")
	t.Setenv("AUDITSTREAM_DATA_DIR", "/from/env")
	root := root()
	serve, _, err := root.Find([]string{"serve"})
	require.NoError(t, err)
	require.NoError(t, serve.ParseFlags([]string{"--data-dir", "/from/flag"}))
	require.NoError(t, bindEnv(serve))
	require.Equal(t, "72h0m0s", serve.Flags().Lookup("log-max-age").Value.String())
	require.Equal(t, "127.0.0.1:9999", serve.Flags().Lookup("listen").Value.String())
	require.Equal(t, "/from/flag", serve.Flags().Lookup("data-dir").Value.String())

	t.Setenv("AUDITSTREAM_RETENTION", "soon")
	require.ErrorContains(t, bindEnv(serve), "AUDITSTREAM_RETENTION")
}

// A share of the container's memory outside 0 – 1 stops serve before it opens anything.
func TestServeRefusesAMemoryLimitRatioOutOfRange(t *testing.T) {
	for _, bad := range []string{"1.5", "-1"} {
		cmd := root()
		cmd.SetArgs([]string{"serve", "--data-dir", t.TempDir(), "--memory-limit-ratio", bad})
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		require.ErrorContains(t, cmd.Execute(), "--memory-limit-ratio: the share of the container's memory limit must be from 0 to 1", bad)
	}
}

func TestServeRefusesANegativeFullAuditInterval(t *testing.T) {
	cmd := root()
	cmd.SetArgs([]string{"serve", "--data-dir", t.TempDir(), "--trail-audit-full-interval", "-1h"})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	require.ErrorContains(t, cmd.Execute(), "full audit interval must not be negative")
}
