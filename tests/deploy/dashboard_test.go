package deploy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
)

// dashboardPort is where the test cluster's head publishes the dashboard.
const dashboardPort = 18092

// testDashboard checks the head node's dashboard: `ferry login` on the
// user node prints a link to it, and the home token it holds opens the
// user's own jobs (not others'); the TA of DASHBOARD_ADMINS sees the
// course.
func testDashboard(t *testing.T, ids []job.ID) {
	base := fmt.Sprintf("http://127.0.0.1:%d", dashboardPort)
	resp, err := http.Get(base + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "the head serves the dashboard on DASHBOARD_PORT")

	login := func(user string) (string, string) {
		r := asUser(t, user, time.Minute, "ferry login -o json")
		require.Equal(t, 0, r.Code, r.String())
		var out struct{ URL, Token, Dashboard string }
		require.NoError(t, json.Unmarshal([]byte(r.Out), &out), r.String())
		assert.True(t, strings.HasSuffix(out.Dashboard, fmt.Sprintf(":%d", dashboardPort)), "the link points at DASHBOARD_PORT: %s", out.Dashboard)
		assert.Contains(t, out.URL, "/login#user="+user+"&token=")
		return user, out.Token
	}
	get := func(user, token, path string) (int, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+user+":"+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	u, tok := login(alice)
	code, body := get(u, tok, "/api/v1/jobs")
	require.Equal(t, http.StatusOK, code, body)
	for _, id := range ids {
		assert.Contains(t, body, string(id), "alice's job is on her list")
	}
	code, body = get(u, tok, "/api/v1/jobs/"+string(ids[0]))
	assert.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, `"state": "succeeded"`)
	code, _ = get(u, tok, "/api/v1/course")
	assert.Equal(t, http.StatusForbidden, code, "a student does not see the course")
	code, _ = get(u, "wrong", "/api/v1/jobs")
	assert.Equal(t, http.StatusUnauthorized, code)

	ta, ttok := login(bob)
	code, body = get(ta, ttok, "/api/v1/course")
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, alice, "the TA sees alice in the course")
	code, _ = get(ta, ttok, "/api/v1/jobs/"+string(ids[0]))
	assert.Equal(t, http.StatusOK, code, "the TA sees alice's job")
}
