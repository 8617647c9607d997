package registry

import "testing"

func TestRedactText(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"userinfo", `Get "https://alice:pa55@registry.example.com/v2/": EOF`, `Get "https://REDACTED@registry.example.com/v2/": EOF`},
		{"user only", `Get "http://alice@r.example/v2/"`, `Get "http://REDACTED@r.example/v2/"`},
		{"signed redirect", `Get "https://bucket.s3.amazonaws.com/blob?X-Amz-Credential=AKIA123&X-Amz-Signature=deadbeef": reset`,
			`Get "https://bucket.s3.amazonaws.com/blob?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED": reset`},
		{"protocol params kept", `POST http://r.example/v2/a/b/blobs/uploads/?from=x%2Fy&mount=sha256%3Aab: 500`,
			`POST http://r.example/v2/a/b/blobs/uploads/?from=x%2Fy&mount=sha256%3Aab: 500`},
		{"upload state", `PATCH http://r.example/v2/a/blobs/uploads/u?_state=secretstate&digest=sha256%3Aab: EOF`,
			`PATCH http://r.example/v2/a/blobs/uploads/u?_state=REDACTED&digest=sha256%3Aab: EOF`},
		{"token scope kept", `GET https://auth.example/token?scope=repository%3Aa%3Apull&service=r: 401`,
			`GET https://auth.example/token?scope=repository%3Aa%3Apull&service=r: 401`},
		{"authorization header", `request had Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.payload.sig`, `request had Authorization: Bearer REDACTED`},
		{"basic credentials", `sent Basic YWxpY2U6cGFzc3dvcmQ=`, `sent Basic REDACTED`},
		{"token field", `{"token":"abcdef123456","expires_in":300}`, `{"token":"REDACTED","expires_in":300}`},
		{"password field", `password=hunter2hunter2 rejected`, `password=REDACTED rejected`},
		{"plain text untouched", `manifest unknown: sha256:abc in 127.0.0.1:5000/a/b`, `manifest unknown: sha256:abc in 127.0.0.1:5000/a/b`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Redact(tc.in); got != tc.want {
				t.Errorf("Redact(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}
