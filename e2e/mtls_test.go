package e2e

import (
	"context"
	"crypto/elliptic"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/tokenauthz/tokenauthz/devidp"
	"github.com/tokenauthz/tokenauthz/internal/testkeys"
)

// nginxMTLS terminates TLS before devidp, requires a client certificate of
// the test CA (ssl_verify_client on), logs the serial of each one and
// passes its subject to devidp, which authenticates the client by it.
var nginxMTLS = template.Must(template.New("nginx-mtls").Parse(`
pid       {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log;
events {}
http {
    log_format            serials '$ssl_client_serial $ssl_client_verify $status';
    access_log            {{.Dir}}/access.log serials;
    client_body_temp_path {{.Dir}}/client_body_temp;
    proxy_temp_path       {{.Dir}}/proxy_temp;
    fastcgi_temp_path     {{.Dir}}/fastcgi_temp;
    uwsgi_temp_path       {{.Dir}}/uwsgi_temp;
    scgi_temp_path        {{.Dir}}/scgi_temp;
    server {
        listen                 {{.Listen}} ssl;
        ssl_certificate        {{.Certs}}/server.crt;
        ssl_certificate_key    {{.Certs}}/server.key;
        ssl_client_certificate {{.Certs}}/ca.crt;
        ssl_verify_client      on;
        location / {
            proxy_set_header X-Client-Subject $ssl_client_s_dn;
            proxy_pass       http://{{.Upstream}};
        }
    }
}
`))

const mtlsConfig = `
token_request: {ca_file: %[2]s/ca.crt}
defaults:
  token_url: %[1]s
  client_id: mtls-client
  client_auth: tls_client_auth
  client_cert_file: %[2]s/tls.crt
  client_key_file: %[2]s/tls.key
  grant_type: client_credentials
services:
  mtls:
    hosts: [mtls.internal]
    scope: orders.read
    endpoints:
      write: {path: /write, scope: orders.write}
  nocert:
    hosts: [nocert.internal]
    client_auth: none
  otherca:
    hosts: [otherca.internal]
    client_cert_file: %[2]s/other.crt
    client_key_file: %[2]s/other.key
`

// startNginxMTLS runs nginxMTLS before upstream with the certificates in
// certs, and returns its address and a function giving the last line of
// its access log once it is want (or, after a while, whatever it is).
func startNginxMTLS(t *testing.T, certs, upstream string) (string, func(want string) string) {
	bin := proxyBinary(t, "nginx", "TOKENAUTHZ_NGINX", nil)
	var logDir string
	addr := startProxy(t, "nginx-mtls", func(t *testing.T, dir string, port int) *exec.Cmd {
		logDir = dir
		conf := filepath.Join(dir, "nginx.conf")
		f, err := os.Create(conf)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := nginxMTLS.Execute(f, map[string]string{"Dir": dir, "Certs": certs, "Upstream": upstream,
			"Listen": "127.0.0.1:" + strconv.Itoa(port)}); err != nil {
			t.Fatal(err)
		}
		return exec.Command(bin, "-p", dir+"/", "-c", conf, "-g", "daemon off; master_process off;")
	})
	// nginx writes the log line after the response: wait a little for it.
	lastLog := func(want string) string {
		var last string
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			data, err := os.ReadFile(filepath.Join(logDir, "access.log"))
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			if last = lines[len(lines)-1]; last == want {
				break
			}
		}
		return last
	}
	return addr, lastLog
}

// TestMTLSThroughNginx: tls_client_auth against a token endpoint behind
// real nginx that verifies client certificates.
func TestMTLSThroughNginx(t *testing.T) {
	idp, err := devidp.Start(context.Background(), devidp.Options{ClientCertHeader: "X-Client-Subject",
		Clients: []devidp.Client{{ID: "mtls-client", TLSSubject: "CN=tokenauthz"}, {ID: "other-client", TLSSubject: "CN=other"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	certs := t.TempDir()
	ca, otherCA := testkeys.NewCA(t, "test CA"), testkeys.NewCA(t, "other CA")
	issue := func(name string, by *testkeys.CA, cn string, serial int64) {
		key := testkeys.EC(t, elliptic.P256())
		testkeys.Write(t, certs, name+".key", testkeys.PKCS8(t, key))
		testkeys.Write(t, certs, name+".crt", by.Issue(t, key, cn, serial))
	}
	testkeys.Write(t, certs, "ca.crt", ca.CertPEM())
	issue("server", ca, "127.0.0.1", 0x10)
	issue("tls", ca, "tokenauthz", 0xA1)
	issue("other", otherCA, "tokenauthz", 0xB1)
	addr, lastLog := startNginxMTLS(t, certs, strings.TrimPrefix(idp.Issuer(), "http://"))
	tokenURL := "https://" + addr + strings.TrimPrefix(idp.TokenEndpoint(), idp.Issuer())
	client := startBroker(t, fmt.Sprintf(mtlsConfig, tokenURL, certs)).client

	t.Run("the-certificate-authenticates-the-client", func(t *testing.T) {
		rec := issuedFor(t, idp, injected(t, client, request("GET", "mtls.internal", "/", "")))
		if rec.ClientID != "mtls-client" || rec.GrantType != devidp.GrantClientCredentials {
			t.Fatalf("issued %+v", rec)
		}
		if got := lastLog("A1 SUCCESS 200"); got != "A1 SUCCESS 200" {
			t.Fatalf("nginx logged %q, want serial A1 verified", got)
		}
	})
	refused := []struct{ name, host, want string }{
		{"no-certificate-is-500", "nocert.internal", "No required SSL certificate was sent"},
		{"certificate-of-another-ca-is-500", "otherca.internal", "The SSL certificate error"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			d := denied(t, client, request("GET", tt.host, "/", ""))
			if d.Code != codes.Internal || d.HTTPStatus != 500 || d.Error != "client_config_rejected" ||
				!strings.Contains(d.Message, "client certificate was refused") || !strings.Contains(d.Message, tt.want) {
				t.Fatalf("got %+v, want 500 client_config_rejected saying the certificate was refused", d)
			}
		})
	}
	t.Run("rotated-files-present-the-new-certificate", func(t *testing.T) {
		before := idp.TokenRequests()
		issue("tls", ca, "tokenauthz", 0xA2) // a renewal: same subject, new key and serial
		rec := issuedFor(t, idp, injected(t, client, request("GET", "mtls.internal", "/write", "")))
		if rec.ClientID != "mtls-client" || len(rec.Scope) != 1 || rec.Scope[0] != "orders.write" {
			t.Fatalf("issued %+v", rec)
		}
		if got := lastLog("A2 SUCCESS 200"); got != "A2 SUCCESS 200" {
			t.Fatalf("nginx logged %q after the rotation, want serial A2", got)
		}
		injected(t, client, request("GET", "mtls.internal", "/", ""))
		if n := idp.TokenRequests() - before; n != 1 {
			t.Fatalf("%d token requests, want 1: a renewed certificate of the same subject keeps the cached token", n)
		}
	})
}
