package kdclientcli

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"kdsrv/internal/secret"
	"kdsrv/internal/spec"
	"kdsrv/internal/testkit"
)

const (
	testPW  = "Sekr1tPw"
	testKey = "1.2.3.4"
)

func secretFile(t *testing.T, content string, mode os.FileMode) string {
	return testkit.WriteFile(t, "secret", content, mode)
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestResolvePassword(t *testing.T) {
	t.Parallel()
	const server = "kdsrv:server=@{tcp:server=h,port=5005%s},trans=@{com:port=com1,baud=115200}"
	good := secretFile(t, testPW+"\r\nignored\n", 0o600)
	for _, tc := range []struct {
		name     string
		k        string
		file     string
		env      map[string]string
		want     string // password in effect
		from     string
		warn     bool
		errWants string
	}{
		{name: "none", k: "", want: ""},
		{name: "on the command line", k: ",password=" + testPW, want: testPW, from: "password= in -k", warn: true},
		{name: "file", file: good, want: testPW, from: "-password-file " + good},
		{name: "environment", env: map[string]string{secret.EnvPassword: testPW}, want: testPW, from: secret.EnvPassword},
		{name: "file beats environment", file: good, env: map[string]string{secret.EnvPassword: "other"}, want: testPW, from: "-password-file " + good},
		{name: "command line and file", k: ",password=x", file: good, errWants: "keep one"},
		{name: "missing file", file: filepath.Join(t.TempDir(), "nope"), errWants: "password file: open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := spec.ParseConnect(strings.Replace(server, "%s", tc.k, 1))
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			s, err := resolveSecrets(c, cliOptions{passwordFile: tc.file}, envOf(tc.env), &stderr)
			if tc.errWants != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errWants) {
					t.Fatalf("err = %v; want %q", err, tc.errWants)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Server.Password != tc.want || s.passwordFrom != tc.from {
				t.Errorf("password %q from %q; want %q from %q", c.Server.Password, s.passwordFrom, tc.want, tc.from)
			}
			w := stderr.String()
			if tc.warn != strings.Contains(w, "visible to every local user") || (tc.warn && strings.Count(w, "\n") != 1) {
				t.Errorf("warning = %q; want one: %v", w, tc.warn)
			}
			if tc.warn && (!strings.Contains(w, "-password-file FILE") || !strings.Contains(w, "KDSRV_PASSWORD")) {
				t.Errorf("warning %q does not say how to avoid it", w)
			}
			if strings.Contains(w, testPW) {
				t.Errorf("stderr shows the password: %q", w)
			}
		})
	}
}

func TestResolvePasswordFileMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("mode bits")
	}
	t.Parallel()
	p := secretFile(t, testPW, 0o644)
	c, _ := spec.ParseConnect("kdsrv:server=@{tcp:server=h,port=5005},trans=@{com:port=com1,baud=115200}")
	_, err := resolveSecrets(c, cliOptions{passwordFile: p}, envOf(nil), &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "mode 0644") || !strings.Contains(err.Error(), "chmod 600 "+p) {
		t.Fatalf("err = %v; want the mode and the chmod fix", err)
	}
}

// TestResolveKDNETKey: the key comes from trans=, -kdnet-key-file or
// KDSRV_KDNET_KEY, and is sent only over ssl/spipe unless
// -insecure-send-kdnet-key says otherwise.
func TestResolveKDNETKey(t *testing.T) {
	t.Parallel()
	keyFile := secretFile(t, "1.2.3.4\n", 0o600)
	badKey := secretFile(t, "not a key\n", 0o600)
	const (
		tcp = "tcp:server=h,port=5005"
		ssl = "ssl:proto=tls1,server=h,port=5005"
	)
	for _, tc := range []struct {
		name     string
		server   string
		trans    string
		o        cliOptions
		env      map[string]string
		errWants []string
		warn     bool
	}{
		{name: "plain tcp refused", server: tcp, trans: "net:port=50000", env: map[string]string{secret.EnvKDNETKey: testKey},
			errWants: []string{"refusing to send the KDNET key over tcp", "ssl or spipe", "-insecure-send-kdnet-key"}},
		{name: "plain tcp allowed explicitly", server: tcp, trans: "net:port=50000", env: map[string]string{secret.EnvKDNETKey: testKey}, o: cliOptions{insecureSendKDNETKey: true}},
		{name: "key on the command line over tcp refused", server: tcp, trans: "net:port=50000,key=" + testKey, warn: true, errWants: []string{"refusing"}},
		{name: "ssl from environment", server: ssl, trans: "net:port=50000", env: map[string]string{secret.EnvKDNETKey: testKey}},
		{name: "ssl from file", server: ssl, trans: "net:port=50000", o: cliOptions{kdnetKeyFile: keyFile}},
		{name: "ssl on the command line warns", server: ssl, trans: "net:port=50000,key=" + testKey, warn: true},
		{name: "no key anywhere", server: ssl, trans: "net:port=50000", errWants: []string{"needs the target's KDNET key", "-kdnet-key-file", "KDSRV_KDNET_KEY"}},
		{name: "bad key in file", server: ssl, trans: "net:port=50000", o: cliOptions{kdnetKeyFile: badKey}, errWants: []string{"KDNET key file " + badKey}},
		{name: "key file for a com target", server: ssl, trans: "com:port=com1,baud=115200", o: cliOptions{kdnetKeyFile: keyFile}, errWants: []string{"is for trans=@{net:...}"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := spec.ParseConnect("kdsrv:server=@{" + tc.server + "},trans=@{" + tc.trans + "}")
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			_, err = resolveSecrets(c, tc.o, envOf(tc.env), &stderr)
			if len(tc.errWants) > 0 {
				if err == nil {
					t.Fatal("no error")
				}
				for _, w := range tc.errWants {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("err %q lacks %q", err, w)
					}
				}
			} else if err != nil {
				t.Fatal(err)
			} else if c.Trans.Key != testKey {
				t.Errorf("key %q; want %q", c.Trans.Key, testKey)
			}
			if err != nil && strings.Contains(err.Error(), testKey) {
				t.Errorf("error shows the key: %v", err)
			}
			if got := strings.Contains(stderr.String(), "KDNET key in trans=@{net:...} given on the command line"); got != tc.warn {
				t.Errorf("warning %q; want one: %v", stderr.String(), tc.warn)
			}
		})
	}
}
