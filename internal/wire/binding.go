package wire

import (
	"crypto/tls"
	"fmt"
)

// TLSBindingLabel is the TLS exporter label (RFC 5705 / RFC 8446 §7.5) of
// the channel binding used by Config.Binding on ssl and spipe.
const TLSBindingLabel = "EXPORTER-kdsrv-wire-v1-channel-binding"

// TLSBindingSize is the length of the exported channel binding.
const TLSBindingSize = 32

// TLSBinding returns the channel-binding value for a TLS connection whose
// handshake has completed: both ends of the same TLS session get the same
// bytes, two different sessions (e.g. either side of a TLS-terminating
// relay) get different ones. Pass it as Config.Binding on both sides.
//
// With TLS 1.2 the session must use the extended master secret (RFC 7627),
// which Go negotiates by default; TLS 1.3 always qualifies.
func TLSBinding(c *tls.Conn) ([]byte, error) {
	cs := c.ConnectionState()
	if !cs.HandshakeComplete {
		return nil, fmt.Errorf("wire: TLS channel binding: the TLS handshake with %s has not completed", c.RemoteAddr())
	}
	b, err := cs.ExportKeyingMaterial(TLSBindingLabel, nil, TLSBindingSize)
	if err != nil {
		return nil, fmt.Errorf("wire: TLS channel binding with %s: %w (TLS 1.2 without extended master secret cannot bind; use TLS 1.3)", c.RemoteAddr(), err)
	}
	return b, nil
}
