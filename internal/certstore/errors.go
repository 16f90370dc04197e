package certstore

import (
	"errors"
	"strings"
)

// Kinds of failure. Every error returned by this package wraps exactly one of
// them; test with errors.Is.
var (
	// ErrNotFound: no certificate in the store has the requested name or
	// thumbprint. The message lists what the store holds.
	ErrNotFound = errors.New("certificate not found")
	// ErrAmbiguous: several usable certificates carry the requested name. The
	// message lists their thumbprints; name one of them instead.
	ErrAmbiguous = errors.New("certificate name is ambiguous")
	// ErrKeyMissing: the certificate was found but no private key in the
	// store belongs to it.
	ErrKeyMissing = errors.New("private key missing")
	// ErrKeyMismatch: a private key stored with the certificate (same file,
	// or a file with the same base name) belongs to a different certificate.
	ErrKeyMismatch = errors.New("private key does not match the certificate")
	// ErrExpired: the certificate's NotAfter date has passed.
	ErrExpired = errors.New("certificate has expired")
	// ErrNotYetValid: the certificate's NotBefore date is in the future.
	ErrNotYetValid = errors.New("certificate is not yet valid")
	// ErrNoServerAuth: the certificate's Extended Key Usage does not allow
	// TLS server authentication.
	ErrNoServerAuth = errors.New("certificate does not allow server authentication")
	// ErrUnreadable: the store itself (directory, system store) cannot be
	// opened or read.
	ErrUnreadable = errors.New("certificate store unreadable")
	// ErrExists: creating a certificate would replace an existing one.
	ErrExists = errors.New("certificate already exists")
	// ErrPinMismatch: the server presented a certificate other than the
	// pinned one.
	ErrPinMismatch = errors.New("server certificate does not match the pinned certificate")
	// ErrBadProto: the proto= value names a broken or unknown protocol.
	ErrBadProto = errors.New("unsupported secure-channel protocol")
	// ErrInvalid: an argument (name, thumbprint, verification settings) is
	// malformed or contradictory.
	ErrInvalid = errors.New("invalid argument")
	// ErrNotSupported: the operation is not available for this kind of store
	// or on this platform.
	ErrNotSupported = errors.New("not supported")
)

// Error is the error type of this package. Kind is one of the Err* sentinels;
// Err is the underlying cause, if any. Neither ever contains key material.
type Error struct {
	Kind   error  // one of the Err* values
	Op     string // what was being done: "find", "list", "create", "verify", ...
	Store  string // the store involved, as Store.String prints it (may be empty)
	Name   string // the certificate name or thumbprint asked for (may be empty)
	Detail string // explanation for a person: what is there, what to do
	Err    error  // underlying cause (may be nil)
}

// Error formats the failure as one message:
// "certstore: OP "NAME" in STORE: KIND: DETAIL: CAUSE".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("certstore: ")
	b.WriteString(e.Op)
	if e.Name != "" {
		b.WriteString(" \"")
		b.WriteString(e.Name)
		b.WriteString("\"")
	}
	if e.Store != "" {
		b.WriteString(" in ")
		b.WriteString(e.Store)
	}
	b.WriteString(": ")
	b.WriteString(e.Kind.Error())
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the kind and the cause, so errors.Is works with both.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}
