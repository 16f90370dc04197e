package wire

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"
)

// Authentication parameters of protocol version 1 (docs/protocol.md,
// "Authentication").
const (
	// KeyIterations is the PBKDF2-HMAC-SHA-256 iteration count that turns
	// the password into the proof key.
	KeyIterations = 600_000
	// keySalt is the fixed PBKDF2 salt. It is fixed (not per session) so a
	// server derives its key once, and an unauthenticated peer cannot make
	// it run PBKDF2 on every connection.
	keySalt = "kdsrv wire v1 password key"
	// transcriptLabel starts the handshake transcript hash.
	transcriptLabel = "kdsrv wire v1 transcript"
	// Proof labels.
	clientProofLabel = "kdsrv client proof"
	serverProofLabel = "kdsrv server proof"
)

// keyCache remembers derived keys so a server pays for PBKDF2 once per
// password, not once per connection. It holds at most keyCacheMax entries;
// they are as sensitive as the passwords the process already holds.
var keyCache struct {
	sync.Mutex
	m map[string][sha256.Size]byte
}

const keyCacheMax = 16

// deriveKey returns K = PBKDF2-HMAC-SHA-256(password, keySalt, KeyIterations, 32).
// The error (possible only in FIPS 140-only mode) never contains the password.
func deriveKey(password string) ([sha256.Size]byte, error) {
	var k [sha256.Size]byte
	keyCache.Lock()
	k, ok := keyCache.m[password]
	keyCache.Unlock()
	if ok {
		return k, nil
	}
	// Derive without holding the lock: it takes a noticeable fraction of a
	// second, and other passwords need not wait for it.
	raw, err := pbkdf2.Key(sha256.New, password, []byte(keySalt), KeyIterations, sha256.Size)
	if err != nil {
		return k, protoErr(Internal, "deriving the password key failed (PBKDF2 refused: FIPS 140-only mode?)")
	}
	copy(k[:], raw)
	keyCache.Lock()
	defer keyCache.Unlock()
	if keyCache.m == nil || len(keyCache.m) >= keyCacheMax {
		keyCache.m = make(map[string][sha256.Size]byte)
	}
	keyCache.m[password] = k
	return k, nil
}

func hmacSum(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// transcript accumulates the handshake transcript hash:
//
//	SHA-256( "kdsrv wire v1 transcript"
//	         || u32(len(hello)) || hello            (whole Hello frame, header included)
//	         || u32(len(reply)) || reply            (whole HelloReply frame)
//	         || u32(len(binding)) || binding )      (channel binding, may be empty)
type transcript struct{ h hash.Hash }

func newTranscript() *transcript {
	t := &transcript{h: sha256.New()}
	t.h.Write([]byte(transcriptLabel))
	return t
}

func (t *transcript) add(b []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(b)))
	t.h.Write(n[:])
	t.h.Write(b)
}

func (t *transcript) sum() []byte { return t.h.Sum(nil) }

// proofs returns the client and server proofs for a transcript hash:
// HMAC-SHA-256(K, label || transcript).
func proofs(key [sha256.Size]byte, th []byte) (client, server [ProofSize]byte) {
	copy(client[:], hmacSum(key[:], []byte(clientProofLabel), th))
	copy(server[:], hmacSum(key[:], []byte(serverProofLabel), th))
	return client, server
}

// PrepareKey derives and caches the proof key for password ahead of any
// handshake, so that the deliberately slow derivation (a noticeable
// fraction of a second, much more on a loaded machine) never runs under a
// handshake deadline. Servers call it at start-up for each password,
// clients before they dial. An empty password needs no key.
func PrepareKey(password string) error {
	if password == "" {
		return nil
	}
	_, err := deriveKey(password)
	return err
}
