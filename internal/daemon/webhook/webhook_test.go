package webhook

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	secret := []byte("hook-secret-123")
	body := `{"ref":"refs/heads/main"}`
	for _, tc := range []struct {
		name    string
		method  string
		headers map[string]string
		body    string
		code    int
		result  string
	}{
		{name: "github signature", headers: map[string]string{"X-Hub-Signature-256": Sign(secret, []byte(body)), "X-GitHub-Event": "push"}, code: 202, result: Accepted},
		{name: "gitlab token", headers: map[string]string{"X-Gitlab-Token": string(secret)}, code: 202, result: Accepted},
		{name: "bearer token", headers: map[string]string{"Authorization": "Bearer " + string(secret)}, code: 202, result: Accepted},
		{name: "bearer scheme is case-insensitive", headers: map[string]string{"Authorization": "bearer " + string(secret)}, code: 202, result: Accepted},
		{name: "unsigned", code: 401, result: Unauthorized},
		{name: "signature of another body", headers: map[string]string{"X-Hub-Signature-256": Sign(secret, []byte(body+" "))}, code: 403, result: Forbidden},
		{name: "signature with another secret", headers: map[string]string{"X-Hub-Signature-256": Sign([]byte("nope"), []byte(body))}, code: 403, result: Forbidden},
		{name: "sha1 signature is not enough", headers: map[string]string{"X-Hub-Signature-256": "sha1=" + strings.Repeat("0", 40)}, code: 403, result: Forbidden},
		{name: "malformed hex", headers: map[string]string{"X-Hub-Signature-256": "sha256=zz"}, code: 403, result: Forbidden},
		{name: "wrong gitlab token", headers: map[string]string{"X-Gitlab-Token": "hook-secret-12"}, code: 403, result: Forbidden},
		{name: "basic auth is not a bearer token", headers: map[string]string{"Authorization": "Basic " + string(secret)}, code: 403, result: Forbidden},
		{name: "one good and one bad credential", headers: map[string]string{"X-Gitlab-Token": string(secret), "Authorization": "Bearer wrong"}, code: 403, result: Forbidden},
		{name: "GET", method: "GET", headers: map[string]string{"X-Gitlab-Token": string(secret)}, code: 405, result: Invalid},
		{name: "oversized body", headers: map[string]string{"X-Gitlab-Token": string(secret)}, body: strings.Repeat("x", MaxBody+1), code: 413, result: Invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var results []string
			accepted := 0
			h := &Handler{Secret: secret, Accept: func(*http.Request) { accepted++ }, Count: func(r string) { results = append(results, r) }}
			method := tc.method
			if method == "" {
				method = "POST"
			}
			b := body
			if tc.body != "" {
				b = tc.body
			}
			req := httptest.NewRequest(method, "/hook", strings.NewReader(b))
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.code {
				t.Errorf("status %d, want %d (%s)", rec.Code, tc.code, rec.Body)
			}
			if len(results) != 1 || results[0] != tc.result {
				t.Errorf("counted %v, want [%s]", results, tc.result)
			}
			if want := map[bool]int{true: 1, false: 0}[tc.code == 202]; accepted != want {
				t.Errorf("Accept called %d time(s), want %d", accepted, want)
			}
			if strings.Contains(rec.Body.String(), string(secret)) {
				t.Errorf("the answer echoes the secret: %s", rec.Body)
			}
		})
	}
}

func TestEmptySecretRefusesEverything(t *testing.T) {
	h := &Handler{Accept: func(*http.Request) { t.Error("accepted with no secret configured") }}
	for _, hdr := range [][2]string{{"X-Gitlab-Token", ""}, {"Authorization", "Bearer "}, {"X-Hub-Signature-256", Sign(nil, nil)}} {
		req := httptest.NewRequest("POST", "/hook", nil)
		req.Header.Set(hdr[0], hdr[1])
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == 202 {
			t.Errorf("%s accepted", hdr[0])
		}
	}
}
