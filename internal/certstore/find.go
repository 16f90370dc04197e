package certstore

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Find looks name up in store and returns the certificate a TLS server can
// present: name is a subject common name or friendly name (case-insensitive)
// or a SHA-1 (or SHA-256) thumbprint in hex, spaces, colons and case ignored.
//
// The entry returned has a private key that matches it, is valid now, and
// allows server authentication; otherwise the error says which of these
// failed (ErrKeyMissing, ErrKeyMismatch, ErrExpired, ErrNotYetValid,
// ErrNoServerAuth). When several certificates carry the name and exactly one
// of them is usable (a renewed certificate next to the expired one), that one
// is returned; when several are usable, the error is ErrAmbiguous; when none
// is, the error is why the one that expires last cannot be used.
func Find(store Store, name string) (*Entry, error) {
	return find(store, name, time.Now())
}

// FindPeer looks name up like Find but returns any matching certificate,
// with or without a private key, whatever its dates and key usages. A client
// uses it to pin a server's certificate kept in its own store
// (certuser=/machuser= on the client side).
func FindPeer(store Store, name string) (*Entry, error) {
	return choose(store, name, func(*Entry) error { return nil })
}

func find(store Store, name string, now time.Time) (*Entry, error) {
	return choose(store, name, func(e *Entry) error { return checkServer(store, name, e, now) })
}

// choose looks name up in store and returns the one match that usable
// accepts. Without a match the error lists what the store holds; when
// usable refuses every match, it is why the one that expires last cannot
// be used; when it accepts several, they are ambiguous.
func choose(store Store, name string, usable func(*Entry) error) (*Entry, error) {
	matches, all, err := lookup(store, name, "find")
	if err != nil {
		return nil, err
	}
	if len(matches) == 0 {
		return nil, notFound(store, name, all)
	}
	var ok []*Entry
	for _, e := range matches {
		if usable(e) == nil {
			ok = append(ok, e)
		}
	}
	switch len(ok) {
	case 0:
		newest := slices.MaxFunc(matches, func(a, b *Entry) int {
			return a.Certificate.NotAfter.Compare(b.Certificate.NotAfter)
		})
		return nil, usable(newest)
	case 1:
		return ok[0], nil
	}
	return nil, ambiguous(store, name, ok)
}

// lookup returns the entries matching name, and all entries of the store.
func lookup(store Store, name, op string) (matches, all []*Entry, err error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, nil, &Error{Kind: ErrInvalid, Op: op, Store: store.String(),
			Detail: "no certificate name given; give a subject name, friendly name or thumbprint"}
	}
	all, err = store.List()
	if err != nil {
		return nil, nil, err
	}
	if tp, ok := NormalizeThumbprint(name); ok {
		for _, e := range all {
			if e.Thumbprint() == tp || e.SHA256() == tp {
				matches = append(matches, e)
			}
		}
		if len(matches) > 0 {
			return matches, all, nil
		}
	}
	for _, e := range all {
		if strings.EqualFold(e.CommonName(), name) || (e.FriendlyName != "" && strings.EqualFold(e.FriendlyName, name)) {
			matches = append(matches, e)
		}
	}
	return matches, all, nil
}

// checkServer reports why e cannot be a TLS server certificate now, or nil.
func checkServer(store Store, name string, e *Entry, now time.Time) error {
	c := e.Certificate
	fail := func(kind error, detail string) error {
		return &Error{Kind: kind, Op: "find", Store: store.String(), Name: name, Detail: detail}
	}
	dates := fmt.Sprintf("valid from %s to %s", c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	switch {
	case now.Before(c.NotBefore):
		return fail(ErrNotYetValid, fmt.Sprintf("%s is %s and it is now %s; check this machine's clock or wait",
			e.describe(), dates, now.UTC().Format(time.RFC3339)))
	case now.After(c.NotAfter):
		return fail(ErrExpired, fmt.Sprintf("%s is %s and it is now %s; renew it (kdsrv cert create) and remove the old one",
			e.describe(), dates, now.UTC().Format(time.RFC3339)))
	}
	if !AllowsServerAuth(c) {
		return fail(ErrNoServerAuth, fmt.Sprintf("%s has Extended Key Usage %s; it must include TLS Web Server Authentication (1.3.6.1.5.5.7.3.1), or carry no Extended Key Usage extension",
			e.describe(), ekuList(c)))
	}
	if e.Key == nil {
		if e.keyMismatch {
			return fail(ErrKeyMismatch, fmt.Sprintf("%s: %s; put the certificate's own key in the store", e.describe(), e.keyNote))
		}
		d := fmt.Sprintf("%s: no private key in the store has this certificate's public key; copy its key into the store (a .key file, mode 0600)", e.describe())
		if e.keyNote != "" {
			d += "; " + e.keyNote
		}
		return fail(ErrKeyMissing, d)
	}
	return nil
}

// AllowsServerAuth reports whether c may authenticate a TLS server: its
// Extended Key Usage extension is absent (no restriction, RFC 5280 4.2.1.12),
// or lists serverAuth or anyExtendedKeyUsage.
func AllowsServerAuth(c *x509.Certificate) bool {
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return true
	}
	return slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny)
}

var ekuNames = map[x509.ExtKeyUsage]string{
	x509.ExtKeyUsageAny:             "any",
	x509.ExtKeyUsageServerAuth:      "serverAuth",
	x509.ExtKeyUsageClientAuth:      "clientAuth",
	x509.ExtKeyUsageCodeSigning:     "codeSigning",
	x509.ExtKeyUsageEmailProtection: "emailProtection",
	x509.ExtKeyUsageTimeStamping:    "timeStamping",
	x509.ExtKeyUsageOCSPSigning:     "OCSPSigning",
}

func ekuList(c *x509.Certificate) string {
	var s []string
	for _, u := range c.ExtKeyUsage {
		if n, ok := ekuNames[u]; ok {
			s = append(s, n)
		} else {
			s = append(s, fmt.Sprintf("usage#%d", u))
		}
	}
	for _, oid := range c.UnknownExtKeyUsage {
		s = append(s, oid.String())
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// describe names an entry and where it lives, for error messages.
func (e *Entry) describe() string {
	return fmt.Sprintf("certificate CN=%q (thumbprint %s) from %s", e.CommonName(), e.Thumbprint(), e.Source)
}

func notFound(store Store, name string, all []*Entry) error {
	detail := "the store is empty; create a certificate with \"kdsrv cert create NAME\" or copy a certificate and its key into it"
	if len(all) > 0 {
		var lines []string
		for _, e := range all {
			lines = append(lines, e.String())
		}
		slices.Sort(lines)
		detail = "the store holds: " + strings.Join(lines, "; ") + "; name one of them by common name, friendly name or thumbprint"
	}
	return &Error{Kind: ErrNotFound, Op: "find", Store: store.String(), Name: name, Detail: detail}
}

func ambiguous(store Store, name string, matches []*Entry) error {
	var lines []string
	for _, e := range matches {
		lines = append(lines, e.String()+" in "+e.Source)
	}
	slices.Sort(lines)
	return &Error{Kind: ErrAmbiguous, Op: "find", Store: store.String(), Name: name,
		Detail: fmt.Sprintf("%d certificates carry this name: %s; name the one you mean by its thumbprint", len(matches), strings.Join(lines, "; "))}
}
