package dashboard

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/ferry-hpc/ferry/pkg/auth"
	"github.com/ferry-hpc/ferry/pkg/cmd/login"
	"github.com/ferry-hpc/ferry/pkg/config"
)

// ferry (which does not link package auth) writes the token where the
// dashboard reads it.
func TestTokenPathAgrees(t *testing.T) {
	assert.Equal(t, auth.TokenFile, login.TokenFile)
}

func TestHosts(t *testing.T) {
	assert.Equal(t, []string{"localhost", "127.0.0.1", "::1", "10.0.0.5", "dash.example"},
		hosts(&config.Dashboard{URL: "https://Dash.example:8443"}, "10.0.0.5:8090"))
	assert.Equal(t, []string{"x"}, hosts(&config.Dashboard{Hosts: []string{"x"}}, "0.0.0.0:1"))
	assert.Nil(t, hosts(&config.Dashboard{}, "0.0.0.0:8090"), "listening everywhere with no URL: any Host")
	assert.Contains(t, hosts(&config.Dashboard{URL: "http://head:8090"}, "0.0.0.0:8090"), "head")
}
