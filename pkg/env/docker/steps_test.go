package docker

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestStepImagesSkipsTheBase(t *testing.T) {
	var s stepImages
	for _, chunk := range []string{
		"Step 1/4 : FROM sha256:32b0\n", " ---> 32b05817d991\n",
		"Step 2/4 : COPY ferry-env/apt /ferry-env/apt\n", " ---> 37a7", "8fdb7c7b\n",
		"Step 3/4 : RUN [\"/bin/sh\"]\n", " ---> Running in 4656f37b86c5\n", "E: Unable to locate package x\n",
		"Step 4/4 : LABEL x\n", " ---> Using cache\n", " ---> 2a2c56c3aa33\r\n",
	} {
		s.feed(chunk)
	}
	assert.Equal(t, []string{"37a78fdb7c7b", "2a2c56c3aa33"}, s.ids)
}

func TestANSIColoursAreStripped(t *testing.T) {
	assert.Equal(t, "E: Unable to locate package x\nRemoving intermediate container be7c\n",
		ansiRE.ReplaceAllString("\x1b[91mE: Unable to locate package x\n\x1b[0mRemoving intermediate container be7c\n", ""))
}
