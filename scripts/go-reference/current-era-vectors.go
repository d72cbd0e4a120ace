// Prints, as JSON, the data of the current-era golden vectors in packages/core/test/vectors/ (challenge
// frames, each stage's token and the claims the hub sees, the remote verifier exchange), produced by the
// reference's own code. Run through vectors-current.sh, which builds it inside a build.sh output tree (it
// imports the reference's internal packages).
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/AtDexters-Lab/nexus-proxy/client"
	"github.com/AtDexters-Lab/nexus-proxy/internal/auth"
	"github.com/AtDexters-Lab/nexus-proxy/internal/config"
	"github.com/AtDexters-Lab/nexus-proxy/protocol"
)

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func intPtr(v int) *int { return &v }

type out map[string]interface{}

func main() {
	result := out{}

	// Challenge frames, as sendChallenge marshals them.
	fixed := make([]byte, 32)
	for i := range fixed {
		fixed[i] = byte(i * 7)
	}
	nonce32 := base64.RawURLEncoding.EncodeToString(fixed)
	var challenges []out
	for _, c := range []struct {
		t protocol.ChallengeType
		n string
	}{
		{protocol.ChallengeHandshake, nonce32},
		{protocol.ChallengeReauth, nonce32},
		{protocol.ChallengeReauth, "abc123"},
		{protocol.ChallengeHandshake, "nonce123"},
	} {
		b, err := json.Marshal(protocol.ChallengeMessage{Type: c.t, Nonce: c.n})
		must(err)
		challenges = append(challenges, out{"type": string(c.t), "nonce": c.n, "text": string(b)})
	}
	result["nonceBytesHex"] = fmt.Sprintf("%x", fixed)
	result["challenges"] = challenges

	// Tokens of each stage from the HMAC provider, with the options of TestHMACTokenProviderProducesExpectedClaims,
	// and the claims the hub's local validator returns for them (marshalled back to JSON).
	type scenario struct {
		name      string
		opts      client.AttestationOptions
		backend   string
		hostnames []string
		tcp       []int
		udp       []client.UDPRouteConfig
		weight    int
		nonce     string
	}
	scenarios := []scenario{
		{"reference-test-options", client.AttestationOptions{HMACSecret: "super-secret", TokenTTL: 60 * time.Second, ReauthIntervalSeconds: 300, ReauthGraceSeconds: 20, MaintenanceGraceCapSeconds: 600, HandshakeMaxAgeSeconds: 5}, "backend", []string{"example.com"}, nil, nil, 2, "nonce123"},
		{"port-claims", client.AttestationOptions{HMACSecret: "super-secret", TokenTTL: 60 * time.Second}, "backend", nil, []int{22, 443}, []client.UDPRouteConfig{{Port: 53, FlowIdleTimeoutSeconds: intPtr(30)}, {Port: 67}}, 1, nonce32},
	}
	var tokenSets []out
	for _, s := range scenarios {
		p, err := client.NewHMACTokenProvider(s.opts, s.backend, s.hostnames, s.tcp, s.udp, s.weight)
		must(err)
		cfg := &config.Config{BackendsJWTSecret: s.opts.HMACSecret}
		local, err := auth.NewValidator(cfg, http.DefaultClient)
		must(err)
		set := out{"name": s.name, "secret": s.opts.HMACSecret, "nonce": s.nonce}
		stages := out{}
		for _, st := range []client.TokenStage{client.StageHandshake, client.StageAttest, client.StageReauth} {
			req := client.TokenRequest{Stage: st, BackendName: s.backend, Hostnames: s.hostnames, TCPPorts: s.tcp, UDPRoutes: s.udp, Weight: s.weight}
			if st != client.StageHandshake {
				req.SessionNonce = s.nonce
			}
			tok, err := p.IssueToken(context.Background(), req)
			must(err)
			claims, err := local.Validate(context.Background(), tok.Value)
			must(err)
			cj, err := json.Marshal(claims)
			must(err)
			stages[string(st)] = out{"token": tok.Value, "hubClaimsJson": string(cj)}
		}
		set["stages"] = stages
		tokenSets = append(tokenSets, set)
	}
	result["tokens"] = tokenSets

	// The remote verifier exchange: what the hub posts, and how it treats each answer.
	first := tokenSets[0]["stages"].(out)["handshake"].(out)["token"].(string)
	type answer struct {
		name   string
		status int
		body   string
	}
	verifiedClaims := `{"hostnames":["example.com"],"weight":2,"handshake_max_age_seconds":5,"iss":"authorizer","sub":"backend","aud":["nexus"],"exp":4102444800,"iat":1796557649}`
	answers := []answer{
		{"valid", 200, `{"valid":true,"claims":` + verifiedClaims + `,"error":""}`},
		{"valid without error key", 200, `{"valid":true,"claims":` + verifiedClaims + `}`},
		{"invalid with error", 200, `{"valid":false,"claims":null,"error":"device revoked"}`},
		{"invalid without error", 200, `{"valid":false}`},
		{"valid without claims", 200, `{"valid":true}`},
		{"valid with null claims", 200, `{"valid":true,"claims":null}`},
		{"not json", 200, `not json`},
		{"valid is a string", 200, `{"valid":"true","claims":{}}`},
		{"service unavailable", 503, `{"valid":false,"error":"maintenance"}`},
		{"internal error", 500, ``},
		{"forbidden", 403, `{"valid":true,"claims":` + verifiedClaims + `}`},
		{"not found", 404, ``},
		{"unauthorized", 401, ``},
	}
	var captured []out
	var exchanges []out
	for _, withSecret := range []bool{true, false} {
		for _, a := range answers {
			a := a
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				captured = append(captured, out{"method": r.Method, "contentType": r.Header.Get("Content-Type"), "body": string(body)})
				w.WriteHeader(a.status)
				_, _ = w.Write([]byte(a.body))
			}))
			cfg := &config.Config{RemoteVerifierURL: srv.URL}
			if withSecret {
				cfg.BackendsJWTSecret = "super-secret"
			}
			v, err := auth.NewValidator(cfg, srv.Client())
			must(err)
			claims, verr := v.Validate(context.Background(), first)
			srv.Close()
			e := out{"name": a.name, "status": a.status, "body": a.body, "localSecret": withSecret}
			if verr != nil {
				e["outcome"] = "rejected"
				e["error"] = verr.Error()
			} else {
				cj, _ := json.Marshal(claims)
				e["outcome"] = "accepted"
				e["claimsJson"] = string(cj)
			}
			exchanges = append(exchanges, e)
		}
	}
	result["verifierRequest"] = captured[0]
	for _, c := range captured {
		if c["body"] != captured[0]["body"] || c["contentType"] != captured[0]["contentType"] {
			panic("requests differ")
		}
	}
	result["verifierExchanges"] = exchanges
	// A verifier that cannot be reached.
	for _, withSecret := range []bool{true, false} {
		cfg := &config.Config{RemoteVerifierURL: "https://127.0.0.1:1/verify"}
		if withSecret {
			cfg.BackendsJWTSecret = "super-secret"
		}
		v, err := auth.NewValidator(cfg, http.DefaultClient)
		must(err)
		claims, verr := v.Validate(context.Background(), first)
		e := out{"name": "unreachable", "localSecret": withSecret}
		if verr != nil {
			e["outcome"] = "rejected"
		} else {
			cj, _ := json.Marshal(claims)
			e["outcome"] = "accepted"
			e["claimsJson"] = string(cj)
		}
		result["unreachable"+fmt.Sprint(withSecret)] = e
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	must(enc.Encode(result))
}
