package memlimit

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// cgroup writes the files of a cgroup tree as the kernel shows them under /sys/fs/cgroup.
func cgroup(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	}
	return root
}

func TestContainer(t *testing.T) {
	const v1None = "9223372036854771712\n"
	for _, tc := range []struct {
		name  string
		files map[string]string
		self  string
		want  int64
	}{
		{"v2, own namespace", map[string]string{"memory.max": "1073741824\n"}, "0::/\n", 1 << 30},
		{"v2, no limit", map[string]string{"memory.max": "max\n"}, "0::/\n", 0},
		{"v2, a systemd service", map[string]string{"system.slice/a.service/memory.max": "536870912\n", "system.slice/memory.max": "max\n"},
			"0::/system.slice/a.service\n", 512 << 20},
		{"v2, the parent's limit is smaller", map[string]string{"k/pod/ctr/memory.max": "max\n", "k/pod/memory.max": "268435456\n"},
			"0::/k/pod/ctr\n", 256 << 20},
		{"v1, own namespace", map[string]string{"memory/memory.limit_in_bytes": "536870912\n"}, "4:memory:/\n", 512 << 20},
		{"v1, no limit", map[string]string{"memory/memory.limit_in_bytes": v1None}, "4:memory:/\n", 0},
		{"v1, the host's path shown, the container's cgroup mounted", map[string]string{"memory/memory.limit_in_bytes": "536870912\n"},
			"12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n", 512 << 20},
		{"v1, a child cgroup", map[string]string{"memory/memory.limit_in_bytes": v1None, "memory/ci/memory.limit_in_bytes": v1None,
			"memory/ci/job/memory.limit_in_bytes": "1073741824\n"}, "4:memory:/ci/job\n1:name=systemd:/\n", 1 << 30},
		{"no /proc/self/cgroup: the roots", map[string]string{"memory.max": "1073741824\n"}, "", 1 << 30},
		{"no cgroup files", nil, "0::/\n", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Container(cgroup(t, tc.files), tc.self)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
	_, err := Container(cgroup(t, map[string]string{"memory.max": "lots"}), "0::/")
	require.ErrorContains(t, err, `memory.max: not a number of bytes: "lots"`)
}

// Not parallel: the soft memory limit is the process's.
func TestFromContainerSetsTheRuntimesLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	t.Setenv("GOMEMLIMIT", "")
	root := cgroup(t, map[string]string{"memory.max": "1073741824", "self": "0::/\n"})
	self := filepath.Join(root, "self")

	container, set, err := FromContainer(root, self, 0.9)
	require.NoError(t, err)
	require.Equal(t, int64(1<<30), container)
	require.Equal(t, int64(966367641), set) // 0.9 GiB, rounded down
	require.Equal(t, set, debug.SetMemoryLimit(-1))

	debug.SetMemoryLimit(math.MaxInt64)
	_, set, err = FromContainer(root, self, 0)
	require.NoError(t, err)
	require.Zero(t, set, "ratio 0 turns it off")
	unlimited := cgroup(t, map[string]string{"memory.max": "max", "self": "0::/\n"})
	_, set, err = FromContainer(unlimited, filepath.Join(unlimited, "self"), 0.9)
	require.NoError(t, err)
	require.Zero(t, set, "no limit in the container")
	for _, bad := range []float64{1.5, -0.1} {
		_, _, err = FromContainer(root, self, bad)
		require.ErrorContains(t, err, "from 0 to 1")
	}
	require.Equal(t, int64(math.MaxInt64), debug.SetMemoryLimit(-1), "left alone in each case")

	t.Setenv("GOMEMLIMIT", "900MiB")
	_, set, err = FromContainer(root, self, 0.9)
	require.NoError(t, err)
	require.Zero(t, set, "the operator's GOMEMLIMIT wins")
	require.Equal(t, int64(math.MaxInt64), debug.SetMemoryLimit(-1))
}
