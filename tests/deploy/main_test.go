package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMain removes the test clusters' images once every test is done (the
// tests share them: TestSwarm runs on what TestCluster built), so that the
// next run starts from no images again. FERRY_KEEP_CLUSTER=1 keeps them.
func TestMain(m *testing.M) {
	code := m.Run()
	if os.Getenv("FERRY_E2E_DEPLOY") == "1" && os.Getenv("FERRY_KEEP_CLUSTER") != "1" {
		out, err := exec.Command("docker", "images", "-q", imagePrefix+"/*").Output()
		if ids := strings.Fields(string(out)); err == nil && len(ids) > 0 {
			if out, err := exec.Command("docker", append([]string{"rmi", "-f"}, ids...)...).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "removing the test images: %v\n%s", err, out)
			}
		}
	}
	os.Exit(code)
}
