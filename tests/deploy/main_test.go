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
		if err := removeImages(); err != nil {
			fmt.Fprintf(os.Stderr, "removing the test images: %v\n", err)
		}
	}
	os.Exit(code)
}

// removeImages removes every image of the test prefix by name, newest
// first, so that the base goes once the images built on it are gone.
func removeImages() error {
	out, err := exec.Command("docker", "images", "--format", "{{.Repository}}:{{.Tag}}", imagePrefix+"/*").Output()
	if err != nil {
		return err
	}
	names := strings.Fields(string(out))
	if len(names) == 0 {
		return nil
	}
	if out, err := exec.Command("docker", append([]string{"rmi"}, names...)...).CombinedOutput(); err != nil {
		return fmt.Errorf("docker rmi: %v\n%s", err, out)
	}
	return nil
}
