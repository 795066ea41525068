package agent

import (
	"fmt"
	"net"
	"os"
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

func sameMountNamespace(mine, theirs string, pid int) (string, error) {
	a, err := os.Readlink(mine)
	if err != nil {
		return "", fmt.Errorf("mount namespace: %w", err)
	}
	b, err := os.Readlink(theirs)
	if err != nil {
		return fmt.Sprintf("cannot read the mount namespace of dockerd (pid %d): %v", pid, err), nil
	}
	if a != b {
		return "", fmt.Errorf("the agent (%s) and dockerd (pid %d, %s) are in different mount namespaces: "+
			"Docker would not see the directories the agent mounts for each job; run the agent in the host's mount namespace", a, pid, b)
	}
	return "", nil
}
