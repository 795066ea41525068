package agent

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferry-hpc/ferry/pkg/localsock"
)

// checkMountNamespace makes sure that dockerd sees the mounts the agent
// makes: the agent pins each run's dirs with bind mounts and hands Docker
// the mount points, so an agent in a mount namespace of its own (a
// container, a systemd unit with a private /run) would give jobs empty
// directories. It asks the kernel who listens on the Docker socket and
// compares that process's mount namespace with the agent's. It returns a
// note instead of an error when it cannot tell (a TCP DOCKER_HOST).
func checkMountNamespace(dockerHost string) (note string, err error) {
	if dockerHost == "" {
		dockerHost = "unix:///var/run/docker.sock"
	}
	path, ok := strings.CutPrefix(dockerHost, "unix://")
	if !ok {
		return "DOCKER_HOST is not a unix socket: cannot check that dockerd sees the agent's mounts", nil
	}
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("docker socket %s: %w", path, err)
	}
	defer c.Close()
	cred, err := localsock.PeerCred(c)
	if err != nil {
		return "", fmt.Errorf("docker socket %s: %w", path, err)
	}
	return sameMountNamespace("/proc/self/ns/mnt", fmt.Sprintf("/proc/%d/ns/mnt", cred.PID), cred.PID)
}

// errOtherNamespace is the mismatch checkMountNamespace reports.
var errOtherNamespace = errors.New("in different mount namespaces")

// unreadableNote starts the note of a dockerd whose namespace cannot be read
// (outside the agent's pid namespace: a worker in a container).
const unreadableNote = "cannot read the mount namespace of dockerd"

func sameMountNamespace(mine, theirs string, pid int) (string, error) {
	a, err := os.Readlink(mine)
	if err != nil {
		return "", fmt.Errorf("mount namespace: %w", err)
	}
	b, err := os.Readlink(theirs)
	if err != nil {
		return fmt.Sprintf("%s (pid %d): %v", unreadableNote, pid, err), nil
	}
	if a != b {
		return "", fmt.Errorf("the agent (%s) and dockerd (pid %d, %s) are %w: "+
			"Docker would not see the directories the agent mounts for each job; run the agent in the host's mount namespace", a, pid, b, errOtherNamespace)
	}
	return "", nil
}

// checkDockerSeesMounts makes sure dockerd will see what the agent mounts
// under mountRoot: either both share a mount namespace, or (an agent in a
// container) mountRoot lies on a shared mount, bound from the host with
// rshared propagation, so that the agent's mounts appear on the host too.
// mountinfo is the agent's /proc/self/mountinfo. It returns a note for the
// log, or an error that says how to fix the set-up.
func checkDockerSeesMounts(dockerHost, mountRoot, mountinfo string) (string, error) {
	note, err := checkMountNamespace(dockerHost)
	return decideMounts(note, err, mountRoot, mountinfo)
}

// decideMounts is checkDockerSeesMounts once the namespaces are compared.
func decideMounts(note string, err error, mountRoot, mountinfo string) (string, error) {
	unknown := err == nil && strings.HasPrefix(note, unreadableNote)
	if !unknown && !errors.Is(err, errOtherNamespace) {
		return note, err
	}
	mp, shared, perr := mountOf(mountinfo, mountRoot)
	if perr != nil {
		return "", fmt.Errorf("mount root %s: %w", mountRoot, perr)
	}
	if shared {
		return fmt.Sprintf("the agent has a mount namespace of its own; its mount root %s is on the shared mount %s, so dockerd sees the agent's mounts", mountRoot, mp), nil
	}
	if unknown {
		return "", fmt.Errorf("%s, and the mount root %s is on %s, which is not a shared mount: "+
			"Docker would not see the directories the agent mounts for each job; bind the mount root from the host with rshared propagation (build_cluster.sh does)", note, mountRoot, mp)
	}
	return "", fmt.Errorf("%w; or bind the mount root %s from the host with rshared propagation (it is on %s, which is not shared)", err, mountRoot, mp)
}

// mountOf finds the mount that holds path in a mountinfo file (the longest
// mount point that is path or a parent of it) and tells whether it is a
// shared mount (propagation "shared:N").
func mountOf(mountinfo, path string) (mountPoint string, shared bool, err error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	path = filepath.Clean(path)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source super
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp != path && mp != "/" && !strings.HasPrefix(path, mp+"/") {
			continue
		}
		if len(mp) < len(mountPoint) {
			continue
		}
		// A later line with the same mount point is mounted over the
		// earlier one: it wins.
		mountPoint, shared = mp, false
		for _, opt := range fields[6:] {
			if opt == "-" {
				break
			}
			if strings.HasPrefix(opt, "shared:") {
				shared = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", false, err
	}
	if mountPoint == "" {
		return "", false, fmt.Errorf("no mount holds it in %s", mountinfo)
	}
	return mountPoint, shared, nil
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of a
// mountinfo path.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
