package certstore

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// maxFileSize bounds every file read from a store; certificate and key files
// are a few kilobytes.
const maxFileSize = 1 << 20

// FriendlyNameHeader is the PEM header that may carry a friendly name on a
// CERTIFICATE block. (OpenSSL refuses certificate blocks with headers, so
// the sidecar file BASE.friendlyname is the portable choice.)
const FriendlyNameHeader = "Friendly-Name"

// FriendlyNameExt is the extension of the sidecar file holding a friendly
// name for BASE.crt / BASE.pem / BASE.cer.
const FriendlyNameExt = ".friendlyname"

// isStoreFile reports whether a directory entry name is read as PEM.
func isStoreFile(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".crt", ".pem", ".cer", ".key":
		return true
	}
	return false
}

// baseName strips the extension: "/d/web.crt" -> "/d/web".
func baseName(path string) string { return strings.TrimSuffix(path, filepath.Ext(path)) }

// storedKey is a private key read from a store file.
type storedKey struct {
	signer crypto.Signer
	file   string
}

// fileProblem records a file that could not be used, reported by Find when
// it may explain a missing key.
type fileProblem struct {
	file string
	err  error
}

// listDir reads a PEM directory store.
func listDir(s Store, dir string) ([]*Entry, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		detail := "check that the directory exists and that this user may read it"
		if errors.Is(err, fs.ErrNotExist) {
			detail = "the directory does not exist; create a certificate with \"kdsrv cert create NAME\" or set " + s.envName()
		} else if errors.Is(err, fs.ErrPermission) {
			detail = "permission denied; run as a user who can read it, or use the other store"
		}
		return nil, &Error{Kind: ErrUnreadable, Op: "list", Store: s.String(), Detail: detail, Err: err}
	}
	var (
		entries  []*Entry
		keys     []storedKey
		problems []fileProblem
	)
	for _, de := range des {
		if !isStoreFile(de.Name()) {
			continue
		}
		path := filepath.Join(dir, de.Name())
		data, err := readSmallFile(path)
		if err != nil {
			problems = append(problems, fileProblem{path, err})
			continue
		}
		es, ks, err := parsePEMFile(path, data)
		if err != nil {
			problems = append(problems, fileProblem{path, err})
		}
		entries = append(entries, es...)
		keys = append(keys, ks...)
	}
	for _, e := range entries {
		e.Source = filepath.Clean(e.Source)
		pairKey(e, keys, problems)
	}
	return dedupe(entries), nil
}

// readSmallFile reads a regular file of at most maxFileSize bytes.
func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes; it is not a certificate or key file", path, maxFileSize)
	}
	return data, nil
}

// parsePEMFile extracts the entry (first certificate plus chain) and the
// private keys of one file. The returned error describes blocks that were
// skipped; what could be parsed is still returned.
func parsePEMFile(path string, data []byte) ([]*Entry, []storedKey, error) {
	var (
		entry *Entry
		keys  []storedKey
		errs  []error
	)
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: bad certificate: %w", path, err))
				continue
			}
			if entry == nil {
				entry = &Entry{Certificate: c, Source: path, FriendlyName: strings.TrimSpace(block.Headers[FriendlyNameHeader])}
			} else {
				entry.Chain = append(entry.Chain, c)
			}
		case "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY":
			if _, enc := block.Headers["Proc-Type"]; enc {
				errs = append(errs, fmt.Errorf("%s: the private key is encrypted; store it unencrypted (openssl pkey -in KEY -out KEY.new) and protect the file with mode 0600", path))
				continue
			}
			k, err := parseKey(block)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", path, err))
				continue
			}
			keys = append(keys, storedKey{signer: k, file: path})
		case "ENCRYPTED PRIVATE KEY":
			errs = append(errs, fmt.Errorf("%s: the private key is encrypted; store it unencrypted (openssl pkey -in KEY -out KEY.new) and protect the file with mode 0600", path))
		}
	}
	if entry == nil {
		return nil, keys, errors.Join(errs...)
	}
	if entry.FriendlyName == "" {
		if b, err := readSmallFile(baseName(path) + FriendlyNameExt); err == nil {
			line, _, _ := strings.Cut(string(b), "\n")
			entry.FriendlyName = strings.TrimSpace(line)
		}
	}
	return []*Entry{entry}, keys, errors.Join(errs...)
}

// parseKey decodes a private key block. The error never contains key bytes.
func parseKey(block *pem.Block) (crypto.Signer, error) {
	var (
		k   any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("unreadable %s block (not PKCS#8, SEC 1 or PKCS#1)", block.Type)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s block holds a %T, which cannot sign", block.Type, k)
	}
	return s, nil
}

// publicKeyEqual reports whether a certificate's public key is the public
// half of signer.
func publicKeyEqual(certPub any, signer crypto.Signer) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	p, ok := certPub.(equaler)
	return ok && p.Equal(signer.Public())
}

// pairKey attaches the matching key to e, or records why there is none.
func pairKey(e *Entry, keys []storedKey, problems []fileProblem) {
	for _, k := range keys {
		if publicKeyEqual(e.Certificate.PublicKey, k.signer) {
			e.Key, e.KeySource = k.signer, filepath.Clean(k.file)
			return
		}
	}
	// A key in the same file, or in a file with the same base name, was
	// meant for this certificate: it belongs to another one.
	base := baseName(e.Source)
	for _, k := range keys {
		if k.file == e.Source || baseName(k.file) == base {
			e.keyMismatch = true
			e.keyNote = fmt.Sprintf("%s holds a private key whose public key is not the certificate's; it belongs to another certificate", k.file)
			return
		}
	}
	var notes []string
	for _, p := range problems {
		if baseName(p.file) == base || strings.EqualFold(filepath.Ext(p.file), ".key") {
			notes = append(notes, p.err.Error())
		}
	}
	slices.Sort(notes)
	if len(notes) > 0 {
		e.keyNote = "files that could not be used: " + strings.Join(notes, "; ")
	}
}

// dedupe merges entries with the same leaf (the same certificate copied into
// two files), keeping the one with a key and the first friendly name.
func dedupe(in []*Entry) []*Entry {
	var out []*Entry
	for _, e := range in {
		i := slices.IndexFunc(out, func(o *Entry) bool { return bytes.Equal(o.Certificate.Raw, e.Certificate.Raw) })
		if i < 0 {
			out = append(out, e)
			continue
		}
		o := out[i]
		if o.Key == nil && e.Key != nil {
			if o.FriendlyName != "" && e.FriendlyName == "" {
				e.FriendlyName = o.FriendlyName
			}
			out[i] = e
		} else if o.FriendlyName == "" {
			o.FriendlyName = e.FriendlyName
		}
	}
	return out
}
