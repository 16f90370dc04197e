package wire

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// handshakeOutcome is what TestHandshake expects of one handshake.
type handshakeOutcome struct {
	auth       bool // on success: both sides authenticated
	clientCode Code // 0: success expected
	remote     bool // the client's error is a *RemoteError from the server
	serverCode Code // expected ErrorCode of the server's error (0: success or no code)
	serverFail bool
}

var (
	unauthenticated = handshakeOutcome{}
	authenticated   = handshakeOutcome{auth: true}
	// deniedByServer: the server refuses the client's proof and says so.
	deniedByServer = handshakeOutcome{clientCode: AccessDenied, remote: true, serverCode: AccessDenied, serverFail: true}
)

func TestHandshake(t *testing.T) {
	t.Parallel()
	bindA, bindB := []byte("tls-exporter-A"), []byte("tls-exporter-B")
	tests := []struct {
		name           string
		client, server Config
		want           handshakeOutcome
	}{
		{"no password", Config{Software: "kdclient/t"}, Config{Software: "kdsrv/t"}, unauthenticated},
		{"right password", Config{Password: "s3cret"}, Config{Password: "s3cret"}, authenticated},
		{"right password and binding", Config{Password: "s3cret", Binding: bindA}, Config{Password: "s3cret", Binding: bindA}, authenticated},
		{"client password, server none", Config{Password: "s3cret"}, Config{}, unauthenticated},
		{"wrong password", Config{Password: "wrong1"}, Config{Password: "s3cret"}, deniedByServer},
		{"binding mismatch (relay)", Config{Password: "s3cret", Binding: bindA}, Config{Password: "s3cret", Binding: bindB}, deniedByServer},
		{"binding on one side only", Config{Password: "s3cret"}, Config{Password: "s3cret", Binding: bindB}, deniedByServer},
		{"client without password", Config{}, Config{Password: "s3cret"}, handshakeOutcome{clientCode: AccessDenied, serverFail: true}},
	}
	for _, tr := range transports {
		for _, tt := range tests {
			t.Run(tr.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				cc, cerr, sc, serr := handshakePair(t, tr.pair, tt.client, tt.server)
				if tt.want.clientCode == 0 {
					if cerr != nil || serr != nil {
						t.Fatalf("handshake failed: client %v; server %v", cerr, serr)
					}
					if cc.Version() != Version || sc.Version() != Version {
						t.Errorf("versions %d/%d, want %d", cc.Version(), sc.Version(), Version)
					}
					if cc.Authenticated() != tt.want.auth || sc.Authenticated() != tt.want.auth {
						t.Errorf("Authenticated = %v/%v, want %v", cc.Authenticated(), sc.Authenticated(), tt.want.auth)
					}
					if cc.PeerSoftware() != tt.server.Software || sc.PeerSoftware() != tt.client.Software {
						t.Errorf("PeerSoftware = %q/%q", cc.PeerSoftware(), sc.PeerSoftware())
					}
					// The connection works after the handshake (send in
					// the background: net.Pipe writes wait for the reader).
					sent := make(chan error, 1)
					go func() { sent <- cc.Send(TypeBreakIn, nil) }()
					if f, err := sc.Recv(); err != nil || f.Type != TypeBreakIn {
						t.Fatalf("Recv after handshake = %v, %v", f.Type, err)
					}
					if err := <-sent; err != nil {
						t.Fatal(err)
					}
					return
				}
				if cerr == nil {
					t.Fatal("client handshake succeeded, want failure")
				}
				if code, _ := ErrorCode(cerr); code != tt.want.clientCode {
					t.Errorf("client error %q has code %v, want %v", cerr, code, tt.want.clientCode)
				}
				var re *RemoteError
				if errors.As(cerr, &re) != tt.want.remote {
					t.Errorf("client error %q: RemoteError = %v, want %v", cerr, !tt.want.remote, tt.want.remote)
				}
				if tt.want.serverFail && serr == nil {
					t.Fatal("server handshake succeeded, want failure")
				}
				if tt.want.serverCode != 0 {
					if code, _ := ErrorCode(serr); code != tt.want.serverCode {
						t.Errorf("server error %q has code %v, want %v", serr, code, tt.want.serverCode)
					}
				}
				for _, err := range []error{cerr, serr} {
					if err != nil && (strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "wrong1")) {
						t.Errorf("error reveals a password: %v", err)
					}
				}
			})
		}
	}
}

func TestHandshakeClientWithoutPasswordMessage(t *testing.T) {
	t.Parallel()
	_, cerr, _, serr := handshakePair(t, pipePair, Config{}, Config{Password: "s3cret"})
	if !errors.Is(cerr, ErrPasswordRequired) {
		t.Fatalf("client error = %v, want ErrPasswordRequired", cerr)
	}
	if !strings.Contains(cerr.Error(), "access denied: the server requires a password (add password=... to server=@{...})") {
		t.Errorf("client error %q lacks the advice", cerr)
	}
	if serr == nil || !strings.Contains(serr.Error(), "closed the connection") {
		t.Errorf("server error = %v, want the client's Bye reported", serr)
	}
}

func TestHandshakeWrongPasswordClosesConnection(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, pair pairFunc) {
		cn, d, done := rawPeerOfServer(t, pair, Config{Password: "s3cret"})
		// A hand-made client that sends a garbage proof.
		writeRaw(t, cn, AppendFrame(nil, TypeHello, EncodeHello(Hello{MinVersion: Version, MaxVersion: Version})))
		f, err := readFrame(t, d, cn)
		if err != nil || f.Type != TypeHelloReply {
			t.Fatalf("HelloReply: %v %v", f.Type, err)
		}
		writeRaw(t, cn, AppendFrame(nil, TypeAuth, make([]byte, ProofSize)))
		re := expectError(t, d, cn)
		if re.Code != AccessDenied || re.Msg != "access denied" {
			t.Errorf("server sent %+v, want exactly AccessDenied \"access denied\"", re)
		}
		expectClosed(t, d, cn)
		if err := <-done; err == nil {
			t.Fatal("server accepted a garbage proof")
		}
	})
}

// TestHandshakeImpostorServer: a server that does not know the password
// accepts any client proof and answers with a proof made from its own guess.
// The client must refuse it.
func TestHandshakeImpostorServer(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, pair pairFunc) {
		cn, sn := pair(t)
		impostor := fakeServer(sn, func(d *Decoder) *RemoteError {
			f, err := d.Next()
			if err != nil {
				return nil
			}
			trs := newTranscript()
			trs.add(AppendFrame(nil, f.Type, f.Payload))
			hr := HelloReply{Version: Version, PasswordRequired: true, Software: "evil"}
			hr.Salt = impostorSalt
			reply := AppendFrame(nil, TypeHelloReply, EncodeHelloReply(hr))
			trs.add(reply)
			trs.add(nil)
			if _, err := sn.Write(reply); err != nil {
				return nil
			}
			if f, err = d.Next(); err != nil || f.Type != TypeAuth {
				return nil
			}
			key, _ := testKeys.key("wrong1", hr.Salt[:]) // the impostor's guess
			_, sp := proofs(key, trs.sum())
			if _, err := sn.Write(AppendFrame(nil, TypeAuthOK, EncodeProof(sp))); err != nil {
				return nil
			}
			return nextError(d)
		})
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		c, err := Client(ctx, cn, cli(Config{Password: "s3cret"}))
		if err == nil {
			c.Close()
			t.Fatal("client accepted an impostor server")
		}
		var pe *ProtocolError
		if !errors.As(err, &pe) || pe.Code != AccessDenied || !strings.Contains(err.Error(), "could not prove") {
			t.Fatalf("client error = %v, want a local AccessDenied about the server proof", err)
		}
		if re := <-impostor; re == nil || re.Code != AccessDenied || re.Msg != "access denied" {
			t.Errorf("impostor received %+v, want AccessDenied \"access denied\"", re)
		}
	})
}

func TestHandshakeVersionMismatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		lo, hi uint16
	}{
		{"server refuses a newer client", 3, 4},
		{"server refuses a version-1 client", 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cn, d, done := rawPeerOfServer(t, tcpPair, Config{HandshakeTimeout: testTimeout})
			writeRaw(t, cn, AppendFrame(nil, TypeHello, EncodeHello(Hello{MinVersion: tc.lo, MaxVersion: tc.hi})))
			re := expectError(t, d, cn)
			theirs, ours := fmt.Sprintf("%d-%d", tc.lo, tc.hi), fmt.Sprintf("%d-%d", MinVersion, Version)
			if re.Code != VersionMismatch || !strings.Contains(re.Msg, theirs) || !strings.Contains(re.Msg, ours) {
				t.Errorf("server sent %+v, want VersionMismatch naming %s and %s", re, theirs, ours)
			}
			expectClosed(t, d, cn)
			if code, _ := ErrorCode(<-done); code != VersionMismatch {
				t.Error("server did not report VersionMismatch")
			}
		})
	}
	t.Run("client explains a refusal", func(t *testing.T) {
		t.Parallel()
		cn, sn := pipePair(t)
		fakeServer(sn, func(d *Decoder) *RemoteError {
			if _, err := d.Next(); err == nil {
				_, _ = sn.Write(AppendFrame(nil, TypeError, EncodeError(VersionMismatch, "client supports protocol versions 1-1, server supports 2-2")))
			}
			sn.Close()
			return nil
		})
		_, err := Client(context.Background(), cn, cli(Config{HandshakeTimeout: testTimeout}))
		var re *RemoteError
		if !errors.As(err, &re) || re.Code != VersionMismatch || !strings.Contains(err.Error(), "upgrade kdclient or kdsrv") {
			t.Fatalf("client error = %v, want a RemoteError VersionMismatch with upgrade advice", err)
		}
	})
	t.Run("client refuses a version it does not speak", func(t *testing.T) {
		t.Parallel()
		cn, sn := pipePair(t)
		got := fakeServer(sn, func(d *Decoder) *RemoteError {
			if _, err := d.Next(); err != nil {
				return nil
			}
			_, _ = sn.Write(AppendFrame(nil, TypeHelloReply, EncodeHelloReply(HelloReply{Version: 9})))
			return nextError(d)
		})
		_, err := Client(context.Background(), cn, cli(Config{HandshakeTimeout: testTimeout}))
		if code, _ := ErrorCode(err); code != VersionMismatch {
			t.Fatalf("client error = %v, want VersionMismatch", err)
		}
		if re := <-got; re == nil || re.Code != VersionMismatch {
			t.Errorf("server received %+v, want a VersionMismatch Error", re)
		}
	})
}

func TestHandshakeTimeouts(t *testing.T) {
	t.Parallel()
	const short = 100 * time.Millisecond
	for _, tr := range transports {
		t.Run(tr.name+"/silent client is dropped", func(t *testing.T) {
			t.Parallel()
			cn, d, done := rawPeerOfServer(t, tr.pair, Config{HandshakeTimeout: short})
			re := expectError(t, d, cn)
			if re.Code != HandshakeTimeout {
				t.Errorf("server sent %+v, want HandshakeTimeout", re)
			}
			expectClosed(t, d, cn)
			if err := <-done; !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("server error = %v, want a deadline error", err)
			}
		})
		t.Run(tr.name+"/client silent after Hello with password", func(t *testing.T) {
			t.Parallel()
			cn, d, done := rawPeerOfServer(t, tr.pair, Config{HandshakeTimeout: short, Password: "s3cret"})
			writeRaw(t, cn, AppendFrame(nil, TypeHello, EncodeHello(Hello{MinVersion: Version, MaxVersion: Version})))
			if f, err := readFrame(t, d, cn); err != nil || f.Type != TypeHelloReply {
				t.Fatalf("HelloReply: %v %v", f.Type, err)
			}
			if re := expectError(t, d, cn); re.Code != HandshakeTimeout {
				t.Errorf("server sent %+v, want HandshakeTimeout", re)
			}
			if err := <-done; !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("server error = %v, want a deadline error", err)
			}
		})
		t.Run(tr.name+"/silent server", func(t *testing.T) {
			t.Parallel()
			cn, sn := tr.pair(t)
			go func() { // read and discard, never answer
				buf := make([]byte, 256)
				_ = sn.SetReadDeadline(time.Now().Add(testTimeout))
				for {
					if _, err := sn.Read(buf); err != nil {
						return
					}
				}
			}()
			_, err := Client(context.Background(), cn, cli(Config{HandshakeTimeout: short}))
			if !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "HelloReply") {
				t.Fatalf("client error = %v, want a deadline error naming HelloReply", err)
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("client error %v is not a net.Error timeout", err)
			}
		})
	}
}

func TestHandshakeContextCancel(t *testing.T) {
	t.Parallel()
	cn, _ := pipePair(t) // the server end never reads
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := Client(ctx, cn, cli(Config{HandshakeTimeout: testTimeout}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("client error = %v, want context.Canceled", err)
	}
}

func TestHandshakeBadFirstFrame(t *testing.T) {
	t.Parallel()
	tests := []badInput{
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), BadFrame},
		{"open before hello", AppendFrame(nil, TypeOpen, EncodeOpen(Open{Target: "x"})), BadFrame},
		{"huge hello", header(TypeHello, 0, 1<<30), FrameTooLarge},
		{"short hello", AppendFrame(nil, TypeHello, []byte{0, 1}), BadFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cn, d, done := rawPeerOfServer(t, tcpPair, Config{HandshakeTimeout: testTimeout})
			writeRaw(t, cn, tt.send)
			if re := expectError(t, d, cn); re.Code != tt.code {
				t.Errorf("server sent %+v, want %v", re, tt.code)
			}
			if code, _ := ErrorCode(<-done); code != tt.code {
				t.Errorf("server error code %v, want %v", code, tt.code)
			}
		})
	}
}

func TestHandshakeSkippedAuth(t *testing.T) {
	t.Parallel()
	cn, d, done := rawPeerOfServer(t, tcpPair, Config{Password: "s3cret", HandshakeTimeout: testTimeout})
	writeRaw(t, cn, AppendFrame(nil, TypeHello, EncodeHello(Hello{MinVersion: Version, MaxVersion: Version})))
	if f, err := readFrame(t, d, cn); err != nil || f.Type != TypeHelloReply {
		t.Fatalf("HelloReply: %v %v", f.Type, err)
	}
	writeRaw(t, cn, AppendFrame(nil, TypeOpen, EncodeOpen(Open{Target: "com:port=COM1"})))
	if re := expectError(t, d, cn); re.Code != AccessDenied || re.Msg != "access denied" {
		t.Errorf("server sent %+v, want AccessDenied", re)
	}
	if code, _ := ErrorCode(<-done); code != AccessDenied {
		t.Error("server did not report AccessDenied")
	}
}

// TestReverseRoles: the side that accepted the TCP connection can run the
// client role (clicon), and the side that dialed the server role.
func TestReverseRoles(t *testing.T) {
	t.Parallel()
	dialer, acceptor := tcpPair(t)
	authenticatedPair(t, "reverse handshake", acceptor, dialer, Config{Password: "s3cret"}, Config{Password: "s3cret"})
}

func TestConfigStringHidesPassword(t *testing.T) {
	t.Parallel()
	cfg := Config{Password: "Hunter2pass", Binding: []byte{1, 2}, Software: "kdsrv/0.1"}
	for _, s := range []string{cfg.String(), cfg.GoString()} {
		if strings.Contains(s, "Hunter2pass") || !strings.Contains(s, "Password: set") {
			t.Errorf("Config string %q reveals or omits the password state", s)
		}
	}
}

func TestKeyCache(t *testing.T) {
	t.Parallel()
	salt1, err := NewSalt()
	if err != nil {
		t.Fatal(err)
	}
	salt2, _ := NewSalt()
	if bytes.Equal(salt1, salt2) || len(salt1) != SaltSize {
		t.Fatalf("NewSalt gave %x and %x: want two different %d-byte salts", salt1, salt2, SaltSize)
	}
	kc := NewKeyCache()
	if err := kc.Prepare(goldenPassword, salt1); err != nil {
		t.Fatal(err)
	}
	k1, err := kc.key(goldenPassword, salt1)
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := (*KeyCache)(nil).key(goldenPassword, salt1) // uncached derivation
	if k1 != k2 || k1 == [sha256.Size]byte{} {
		t.Fatal("the cached key differs from a fresh derivation")
	}
	if k3, _ := kc.key("wrong1", salt1); k3 == k1 {
		t.Fatal("different passwords give the same key")
	}
	// The point of the salt: the same password gives another key on
	// another server, so precomputation does not carry over.
	if k4, _ := kc.key(goldenPassword, salt2); k4 == k1 {
		t.Fatal("different salts give the same key")
	}
	if _, err := kc.key(goldenPassword, salt1[:4]); err == nil {
		t.Fatal("a short salt was accepted")
	}
}

func TestServerWithPasswordNeedsSalt(t *testing.T) {
	t.Parallel()
	cn, sn := pipePair(t)
	go func() {
		_, _ = Client(context.Background(), cn, cli(Config{Password: "s3cret", HandshakeTimeout: testTimeout}))
	}()
	_, err := Server(context.Background(), sn, Config{Password: "s3cret", HandshakeTimeout: testTimeout})
	if code, _ := ErrorCode(err); code != Internal || !strings.Contains(err.Error(), "salt") {
		t.Fatalf("server without a salt: %v, want an Internal error naming the salt", err)
	}
}

func TestHandshakeUsesServerSalt(t *testing.T) {
	t.Parallel()
	// Two servers with the same password and different salts: a client
	// completes both handshakes (it derives the key from the announced
	// salt), and the two proofs differ.
	var proofs [][]byte
	for _, salt := range [][]byte{testSalt, otherSalt} {
		cn, sn := pipePair(t)
		ch := make(chan hsResult, 1)
		go func() {
			c, err := Server(context.Background(), sn, Config{Password: "s3cret", Salt: salt, Keys: testKeys, HandshakeTimeout: testTimeout})
			ch <- hsResult{c, err}
		}()
		rec := &recordConn{Conn: cn}
		c, err := Client(context.Background(), rec, cli(Config{Password: "s3cret", HandshakeTimeout: testTimeout}))
		r := <-ch
		if err != nil || r.err != nil {
			t.Fatalf("salt %q: client %v, server %v", salt, err, r.err)
		}
		if !c.Authenticated() {
			t.Fatal("not authenticated")
		}
		c.Close()
		r.conn.Close()
		proofs = append(proofs, rec.lastWrite)
	}
	if bytes.Equal(proofs[0], proofs[1]) {
		t.Fatal("the client proof does not depend on the server's salt")
	}
}

// recordConn remembers the Auth frame a client writes.
type recordConn struct {
	net.Conn
	lastWrite []byte
}

func (r *recordConn) Write(b []byte) (int, error) {
	if len(b) > 1 && Type(b[1]) == TypeAuth {
		r.lastWrite = bytes.Clone(b)
	}
	return r.Conn.Write(b)
}

func TestRefuse(t *testing.T) {
	t.Parallel()
	cn, sn := tcpPair(t)
	go func() { _ = Refuse(sn, TooManyAttempts, "too many failed attempts; try again in 8 s") }()
	_, err := Client(context.Background(), cn, cli(Config{HandshakeTimeout: testTimeout}))
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != TooManyAttempts || !strings.Contains(err.Error(), "try again in 8 s") {
		t.Fatalf("client error = %v, want TooManyAttempts with the server's text", err)
	}
}
