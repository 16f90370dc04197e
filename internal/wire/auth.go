package wire

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"sync"
)

// Authentication parameters of protocol version 2 (docs/protocol.md,
// "Authentication").
const (
	// KeyIterations is the PBKDF2-HMAC-SHA-256 iteration count that turns
	// the password and the server's salt into the proof key.
	KeyIterations = 600_000
	// transcriptLabel starts the handshake transcript hash.
	transcriptLabel = "kdsrv wire v2 transcript"
	// Proof labels.
	clientProofLabel = "kdsrv client proof"
	serverProofLabel = "kdsrv server proof"
)

// NewSalt returns a fresh random password salt for a server. A server makes
// one when it starts and announces it in every HelloReply, so it derives
// each password's key once, while a dictionary precomputed against one
// server is useless against another.
func NewSalt() ([]byte, error) {
	s := make([]byte, SaltSize)
	if _, err := rand.Read(s); err != nil {
		return nil, fmt.Errorf("wire: no randomness for the password salt: %w", err)
	}
	return s, nil
}

// KeyCache remembers derived proof keys by (password, salt), so that a
// server pays for PBKDF2 once per password and a client once per server it
// talks to. It holds at most keyCacheMax entries; they are as sensitive as
// the passwords the process already holds. The zero value is not usable:
// make one with NewKeyCache. A nil *KeyCache derives every time.
type KeyCache struct {
	mu sync.Mutex
	m  map[keyCacheKey][sha256.Size]byte
}

type keyCacheKey struct {
	password string
	salt     [SaltSize]byte
}

const keyCacheMax = 16

// NewKeyCache returns an empty key cache.
func NewKeyCache() *KeyCache {
	return &KeyCache{m: make(map[keyCacheKey][sha256.Size]byte)}
}

// Prepare derives and caches the proof key for password and salt ahead of
// any handshake, so that the deliberately slow derivation (a noticeable
// fraction of a second, much more on a loaded machine) never runs under a
// handshake deadline. Servers call it at start-up for each password. An
// empty password needs no key. The error never contains the password.
func (kc *KeyCache) Prepare(password string, salt []byte) error {
	if password == "" {
		return nil
	}
	_, err := kc.key(password, salt)
	return err
}

// key returns K = PBKDF2-HMAC-SHA-256(password, salt, KeyIterations, 32).
func (kc *KeyCache) key(password string, salt []byte) ([sha256.Size]byte, error) {
	var k [sha256.Size]byte
	if len(salt) != SaltSize {
		return k, protoErr(Internal, "password salt is %d bytes, want %d", len(salt), SaltSize)
	}
	ck := keyCacheKey{password: password}
	copy(ck.salt[:], salt)
	if kc != nil {
		kc.mu.Lock()
		k, ok := kc.m[ck]
		kc.mu.Unlock()
		if ok {
			return k, nil
		}
	}
	// Derive without holding the lock: it takes a noticeable fraction of a
	// second, and other passwords need not wait for it.
	raw, err := pbkdf2.Key(sha256.New, password, salt, KeyIterations, sha256.Size)
	if err != nil {
		return k, protoErr(Internal, "deriving the password key failed (PBKDF2 refused: FIPS 140-only mode?)")
	}
	copy(k[:], raw)
	if kc != nil {
		kc.mu.Lock()
		defer kc.mu.Unlock()
		if kc.m == nil || len(kc.m) >= keyCacheMax {
			kc.m = make(map[keyCacheKey][sha256.Size]byte)
		}
		kc.m[ck] = k
	}
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
//	SHA-256( "kdsrv wire v2 transcript"
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
