// Package memlimit sets the Go runtime's soft memory limit from the container's memory limit.
//
// The Go runtime knows nothing of a container's limit: with its default GOGC it lets the heap
// grow to twice what is live before it collects, so a service whose live heap is over half its
// container's limit is killed, or stalls at the limit while the kernel takes back the pages of
// its files, for memory it did not need. Under a soft limit the collector works harder as the
// heap nears it instead. Prometheus (--auto-gomemlimit) does the same.
package memlimit

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
)

// Where Linux shows the cgroup hierarchies, and the process's place in them.
const (
	Root = "/sys/fs/cgroup"
	Self = "/proc/self/cgroup"
)

// unlimited is where a cgroup v1 limit means none: the kernel writes the largest page-aligned
// int64 (9223372036854771712) for "no limit".
const unlimited = 1 << 62

// Container returns the memory limit that applies to the process: the smallest of its cgroup's
// and its ancestors' (a limit holds for everything under it), in cgroup v2 (memory.max) and v1
// (memory/memory.limit_in_bytes), read from the hierarchies mounted at root for the cgroups that
// self (the text of /proc/self/cgroup) names. A container with a cgroup namespace of its own is
// at its hierarchy's root; one without sees the host's path, which may not exist under root:
// the directories that do are read. 0 when no limit applies.
func Container(root, self string) (int64, error) {
	type hierarchy struct{ dir, file, path string }
	var hs []hierarchy
	for line := range strings.SplitSeq(self, "\n") {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "": // v2
			hs = append(hs, hierarchy{root, "memory.max", parts[2]})
		case slices.Contains(strings.Split(parts[1], ","), "memory"): // v1
			hs = append(hs, hierarchy{filepath.Join(root, "memory"), "memory.limit_in_bytes", parts[2]})
		}
	}
	if len(hs) == 0 { // no /proc/self/cgroup: the roots
		hs = []hierarchy{{root, "memory.max", "/"}, {filepath.Join(root, "memory"), "memory.limit_in_bytes", "/"}}
	}
	var limit int64
	for _, h := range hs {
		for p := path.Clean("/" + h.path); ; p = path.Dir(p) {
			n, err := read(filepath.Join(h.dir, filepath.FromSlash(p), h.file))
			if err != nil {
				return 0, err
			}
			if n > 0 && (limit == 0 || n < limit) {
				limit = n
			}
			if p == "/" {
				break
			}
		}
	}
	return limit, nil
}

// read returns the limit in a cgroup's file: 0 for none, or when there is no such file.
func read(name string) (int64, error) {
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errors.New(name + ": not a number of bytes: " + strconv.Quote(s))
	}
	if n <= 0 || n >= unlimited {
		return 0, nil
	}
	return n, nil
}

// FromContainer sets the runtime's soft memory limit to ratio × the container's limit (see
// Container; selfFile is /proc/self/cgroup) and returns both; set is 0 when it left the limit
// alone: ratio is 0, no limit applies, or GOMEMLIMIT is set (the operator's choice, which the
// runtime has applied already).
func FromContainer(root, selfFile string, ratio float64) (container, set int64, err error) {
	if ratio < 0 || ratio > 1 {
		return 0, 0, errors.New("the share of the container's memory limit must be from 0 to 1")
	}
	if ratio == 0 || os.Getenv("GOMEMLIMIT") != "" {
		return 0, 0, nil
	}
	self, err := os.ReadFile(selfFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, 0, err
	}
	container, err = Container(root, string(self))
	if err != nil || container == 0 {
		return container, 0, err
	}
	set = int64(float64(container) * ratio)
	debug.SetMemoryLimit(set)
	return container, set, nil
}
